"""One writer per run: an exclusive ``flock`` on ``<out>.lock``, released by the kernel when its holder
exits or is killed, so it can never go stale. A launcher of data-parallel ranks holds it for them
(``held_for_ranks``); nothing outside ``tuco.runs`` touches a lock. Torch-free."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tuco.errors import RunError
from tuco.runs.store import lock_path

_HELD_ENV = "TUCO_RUN_LOCK_HELD"  # set by held_for_ranks for the ranks it starts


class RunLock:
    """An exclusive ``flock`` on an output's lock file."""

    def __init__(self, out: str | Path) -> None:
        self.out = out
        self.path = lock_path(out)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise RunError naming the process that holds it."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RunError(f"cannot create the lock file {str(self.path)!r}: {err.strerror or err}; choose another --out") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise RunError(
                f"another tuco process (pid {holder}) is writing {self.out} right now ({self.path.name} is "
                "locked); wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (the file stays; it is reused)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def held_by_launcher(out: str | Path) -> bool:
    """True in a rank whose launcher holds ``out``'s lock for it."""
    return os.environ.get(_HELD_ENV) == str(lock_path(out))


def probe(out: str | Path) -> None:
    """Raise RunError now when another process writes ``out`` (not in a rank whose launcher holds it)."""
    if not held_by_launcher(out):
        RunLock(out).acquire().release()


@contextmanager
def held_for_ranks(out: str | Path) -> Iterator[dict[str, str]]:
    """Hold ``out``'s lock while the ranks of a data-parallel run write it; yields the environment the
    ranks need (so rank 0 does not try to take the lock its launcher holds)."""
    lock = RunLock(out).acquire()
    try:
        yield {_HELD_ENV: str(lock_path(out))}
    finally:
        lock.release()
