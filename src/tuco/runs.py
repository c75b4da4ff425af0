"""Runs as a library concept: where a run's rows go, the manifest that says what made them, a lock so
that one writer at a time owns them, resume, shards of data-parallel ranks and their merge.

A run's output is a results file (``scores.jsonl`` / ``scores.parquet``; manifest
``scores.manifest.json`` beside it) or a run directory (``DIR/rows.jsonl``, ``DIR/rows.manifest.json``,
plus what the experiment adds: ``metrics.json``, plots, ``report.html``).

Integrity rules, each tested by killing real runs:
- rows are JSON lines with every non-ASCII character escaped, so no Unicode (U+2028, U+0085, ...)
  can split a line; readers split on ``\\n`` only and ignore an unterminated last line (a torn write);
- every batch is one flushed write; a resumed run recomputes whole batches, so a batch cut short by
  a kill is redone and the final file holds one row per key, in input order;
- a lock (``flock`` on ``<out>.lock``, released by the kernel when its holder dies) makes a second
  writer fail at once instead of interleaving lines;
- the manifest carries a fingerprint of everything that determines the rows; ``resume`` refuses a
  different one and names what differs; an existing output is refused unless ``resume`` or
  ``overwrite`` is given.

Torch-free: ``tuco report`` reads runs through this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuco.errors import RunError

SUFFIXES = (".jsonl", ".parquet")
ROWS = "rows.jsonl"
LOCK_ENV = "TUCO_RUN_LOCK_HELD"  # set by a launcher that holds the lock for its ranks


# --------------------------------------------------------------------------------------------
# Where a run's files are.
# --------------------------------------------------------------------------------------------


def is_results_file(path: str | Path) -> bool:
    """True when ``path`` names a results file (.jsonl/.parquet) rather than a run directory."""
    return Path(path).suffix.lower() in SUFFIXES


def rows_path(out: str | Path) -> Path:
    """The rows file of an output: the file itself, or ``DIR/rows.jsonl`` of a run directory."""
    p = Path(out).expanduser()
    return p if is_results_file(p) else p / ROWS


def manifest_path(out: str | Path) -> Path:
    """``scores.jsonl`` -> ``scores.manifest.json``, ``scores.parquet`` -> ``scores.parquet.manifest.json``
    (so the two never share one); a run directory -> ``DIR/rows.manifest.json``."""
    p = rows_path(out)
    if p.suffix.lower() == ".parquet":
        return p.with_name(p.name + ".manifest.json")
    return p.with_name(p.stem + ".manifest.json")


def lock_path(out: str | Path) -> Path:
    """The lock file of an output."""
    p = rows_path(out)
    return p.with_name(p.name + ".lock")


def shard_path(out: str | Path, rank: int) -> Path:
    """Where rank ``rank`` of a data-parallel run writes its rows."""
    p = rows_path(out)
    return p.with_name(f"{p.name}.part-{rank}.jsonl")


def _part_paths(rows: Path) -> list[Path]:
    """Row files a run may leave beside its rows file: the Parquet staging file and per-rank shards."""
    staged = [rows.with_name(rows.name + ".partial.jsonl")]
    shards = sorted(rows.parent.glob(rows.name + ".part-*.jsonl")) if rows.parent.exists() else []
    return [p for p in staged + shards if p.exists()]


def check_output(
    out: str | Path, *, directory_ok: bool = True, file_ok: bool = True, new_run: bool = False, probe_lock: bool = False
) -> Path:
    """Validate an output before any work: a .jsonl/.parquet file or (``directory_ok``) a run directory,
    pyarrow for Parquet, a parent that exists or can be created and is writable, (``new_run``, i.e.
    neither resume nor overwrite) no run already there, and (``probe_lock``: only in the process that
    will own the run, never in its ranks) no other process writing it. Creates the directory."""
    p = Path(out).expanduser()
    if is_results_file(p) and not file_ok:
        raise RunError(f"output {str(out)!r} names a results file, but this writes a run directory (rows, metrics, plots): give --out DIR")
    if is_results_file(p):
        if p.is_dir():
            raise RunError(f"output {str(out)!r} is a directory: give a file name ending in .jsonl or .parquet")
        if p.suffix.lower() == ".parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError as err:
                raise RunError("writing .parquet needs pyarrow: `pip install 'tuco[parquet]'` (or write .jsonl)") from err
        folder = p.parent
    elif not directory_ok:
        raise RunError(f"output {str(out)!r} must end in .jsonl or .parquet")
    elif p.exists() and not p.is_dir():
        raise RunError(f"output {str(out)!r} is a file; give a run directory (or a .jsonl/.parquet results file)")
    else:
        folder = p
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create the output directory {str(folder)!r}: {err.strerror or err}; choose another --out") from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunError(f"output directory {str(folder)!r} is not writable; choose another --out")
    if new_run:
        refuse_existing(p)
    if probe_lock and os.environ.get(LOCK_ENV) != str(lock_path(p)):
        RunLock(p).acquire().release()  # another process writing this run is refused now, not after the model loads
    return p


def refuse_existing(out: str | Path) -> None:
    """Raise RunError when ``out`` already holds a run (rows, shards or a manifest)."""
    rows = rows_path(out)
    old = read_manifest(out)
    has_rows = (rows.exists() and rows.stat().st_size > 0) or bool(_part_paths(rows))
    if has_rows or old:
        n = len(read_rows(rows)) if rows.exists() and rows.stat().st_size > 0 else 0
        n += sum(len(read_jsonl_rows(part)) for part in _part_paths(rows))
        raise RunError(
            f"{out} already holds a run ({n} rows, status {old.get('status', 'unknown')}); "
            "add --resume to continue it, --overwrite to replace it, or choose another --out"
        )


# --------------------------------------------------------------------------------------------
# Reading and writing rows.
# --------------------------------------------------------------------------------------------


def parquet_table(rows: Sequence[dict[str, Any]]) -> Any:
    """A pyarrow table of ``rows`` with every field any row has (absent -> null). A field whose values
    have no common type (5 in one row, "high" in another) raises RunError naming it."""
    import pyarrow as pa

    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    columns = {}
    for name in names:
        try:
            columns[name] = pa.array([row.get(name) for row in rows])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            kinds = sorted({type(row[name]).__name__ for row in rows if row.get(name) is not None})
            raise RunError(
                f"field {name!r} has values of different types ({', '.join(kinds)}): a Parquet column holds one type; "
                "make them one type in the prompt file, or write .jsonl"
            ) from err
    return pa.table(columns) if columns else pa.table({"id": pa.array([], pa.string())})


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf floats become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def encode_row(row: dict[str, Any]) -> str:
    """One JSON line, every non-ASCII character escaped (no line or paragraph separator can end it)."""
    return json.dumps(_clean(row), ensure_ascii=True, allow_nan=False) + "\n"


def _complete_prefix(path: Path) -> int:
    """Byte length of the complete lines of a JSONL file (a write cut by SIGKILL leaves a tail)."""
    data = path.read_bytes()
    return data.rfind(b"\n") + 1


def read_jsonl_rows(path: str | Path) -> list[dict[str, Any]]:
    """Complete rows of a JSONL rows file (an unterminated last line is a torn write: skipped).
    A complete line that is not JSON raises a RunError naming the file and line."""
    p = Path(path)
    data = p.read_bytes()
    out = []
    for n, line in enumerate(data[: data.rfind(b"\n") + 1].split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunError(
                f"{p}: line {n} is not a result row ({err}); the file was edited or written by "
                "something else: restore it, or start again with --overwrite"
            ) from err
        if not isinstance(row, dict):
            raise RunError(f"{p}: line {n} is not a JSON object")
        out.append(row)
    return out


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl or .parquet results file."""
    p = Path(path)
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()
    return read_jsonl_rows(p)


class RowWriter:
    """Appends rows, as they are computed, to one JSONL file; every ``write`` is one flushed write of
    whole lines. ``append=True`` keeps the complete rows already there (cutting a torn last line)."""

    def __init__(self, target: Path, *, append: bool) -> None:
        self.target = target
        self.count = 0
        if append and target.exists():
            with target.open("r+b") as f:
                f.truncate(_complete_prefix(target))
        self._file = target.open("ab" if append else "wb")

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write rows and flush (and fsync: they survive a crash of the machine, not only of the process)."""
        data = "".join(encode_row(r) for r in rows).encode("ascii")
        if data:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
            self.count += data.count(b"\n")

    def close(self) -> None:
        """Close the file (rows stay where they are until the run merges them)."""
        self._file.close()


def make_readable(*dirs: str | Path) -> None:
    """Make saved checkpoint files readable by everyone (safetensors writes 0600: another user would then
    get a misleading "No such file")."""
    for d in dirs:
        for p in Path(d).rglob("*"):
            if p.is_file():
                p.chmod(0o644)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except PermissionError as err:
        tmp.unlink(missing_ok=True)
        raise RunError(f"cannot write {str(path)!r}: permission denied; choose another output") from err


# --------------------------------------------------------------------------------------------
# Manifest and fingerprint.
# --------------------------------------------------------------------------------------------


def _git_sha() -> str | None:
    try:
        root = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    """Versions of the pieces a result depends on."""
    import importlib.metadata as md

    found: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("tuco", "torch", "transformers", "peft"):
        try:
            found[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            found[pkg] = None
    found["tuco_git_sha"] = _git_sha()
    return found


def fingerprint(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines a run's rows."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def prompts_digest(items: Iterable[tuple[str, Sequence[int]]]) -> str:
    """A digest of (id, token ids) pairs: a resumed run must see the very same prompts."""
    h = hashlib.sha256()
    for pid, ids in items:
        h.update(json.dumps([pid, list(ids)]).encode("utf-8"))
    return h.hexdigest()[:16]


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The manifest of an output ({} when there is none or it cannot be read)."""
    p = manifest_path(out)
    try:
        data = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [
        f"{k}: {json.dumps(old.get(k), default=str)} before, {json.dumps(new.get(k), default=str)} now"
        for k in keys
        if json.dumps(old.get(k), sort_keys=True, default=str) != json.dumps(new.get(k), sort_keys=True, default=str)
    ]


# --------------------------------------------------------------------------------------------
# The lock.
# --------------------------------------------------------------------------------------------


class RunLock:
    """An exclusive ``flock`` on ``<out>.lock``: held while a run writes; the kernel releases it when the
    holder exits or is killed, so it can never go stale."""

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


# --------------------------------------------------------------------------------------------
# A run.
# --------------------------------------------------------------------------------------------


def row_id(row: dict[str, Any]) -> str:
    """The identity of a score row: its prompt id."""
    return str(row.get("id"))


@dataclass
class Run:
    """One run's output and lifecycle: ``open`` (lock, refuse / resume / overwrite, manifest
    ``running``), ``write`` rows as they are computed, ``finish`` (merge in input order, manifest
    ``finished``) or ``stop`` (keep every row, manifest ``interrupted`` / ``failed: why``).

    ``config``: everything that determines the rows (its fingerprint guards resume); ``info``: what
    else the manifest records (counts, timings). ``key``: a row's identity (unique within the run).
    In a data-parallel run every rank opens the run with its ``rank``/``world``; rank 0 does the
    checks, the manifest and the merge, and each rank writes its own shard.
    """

    out: Path
    config: dict[str, Any]
    resume: bool = False
    overwrite: bool = False
    key: Callable[[dict[str, Any]], Any] = row_id
    rank: int = 0
    world: int = 1
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.resume and self.overwrite:
            raise RunError("give --resume (continue the run) or --overwrite (replace it), not both")
        self.out = Path(self.out).expanduser()
        self.rows_file = rows_path(self.out)
        self.parquet = self.rows_file.suffix.lower() == ".parquet"
        self._lock: RunLock | None = None
        self._writer: RowWriter | None = None
        self.done: set[Any] = set()
        self.started = time.time()
        self.previous_seconds = 0.0  # time spent by the sessions this one resumes
        self.first_started = self.started  # when the run began (kept over resumes; orders a suite of runs)

    # ---- targets ----

    @property
    def target(self) -> Path:
        """Where this rank appends: its shard (several ranks), the Parquet staging file, or the rows file."""
        if self.world > 1:
            return shard_path(self.out, self.rank)
        if self.parquet:
            return self.rows_file.with_name(self.rows_file.name + ".partial.jsonl")
        return self.rows_file

    def existing_rows(self) -> list[dict[str, Any]]:
        """Every complete row found for this output: the rows file, the staging file and the shards."""
        rows = read_rows(self.rows_file) if self.rows_file.exists() else []
        for part in _part_paths(self.rows_file):
            rows += read_jsonl_rows(part)
        return rows

    def _clear(self) -> None:
        for p in [self.rows_file, *_part_paths(self.rows_file)]:
            p.unlink(missing_ok=True)

    # ---- lifecycle ----

    def open(self) -> Run:
        """Prepare the output (rank 0) and this rank's writer; returns self. Raises RunError when the
        output holds another run (without resume/overwrite), or a different configuration (resume)."""
        check_output(self.out)  # an existing run and the lock are checked by rank 0 under the lock (_prepare)
        if self.rank == 0:
            if os.environ.get(LOCK_ENV) != str(lock_path(self.out)):
                self._lock = RunLock(self.out).acquire()
            try:
                self._prepare()
            except BaseException:
                self.close()
                raise
        return self

    def _prepare(self) -> None:
        old = read_manifest(self.out)
        has_rows = (self.rows_file.exists() and self.rows_file.stat().st_size > 0) or bool(_part_paths(self.rows_file))
        if not (self.resume or self.overwrite):
            refuse_existing(self.out)  # checked again under the lock
        if self.overwrite or not self.resume:
            self._clear()
        elif has_rows or old:
            if not old:
                raise RunError(f"{self.out} has rows but no manifest, so what made them is unknown; start again with --overwrite")
            if old.get("fingerprint") != fingerprint(self.config):
                diff = _differences(old.get("config", {}), self.config)
                raise RunError(
                    f"--resume: {self.out} was made with a different configuration ("
                    + "; ".join(diff[:4] or ["tuco version"])
                    + "); use the same options, or --overwrite"
                )
            self.previous_seconds = float(old.get("seconds") or 0.0)
            self.first_started = float(old.get("started_at") or self.started)
        self.write_manifest("running")

    def start_writing(self, done_keys: set[Any] | None = None) -> None:
        """Open this rank's writer (after rank 0 prepared the output; in several ranks, after a barrier)."""
        self._writer = RowWriter(self.target, append=True)
        self.done = set(done_keys) if done_keys is not None else set()

    def done_keys(self) -> set[Any]:
        """Keys of the rows already written for this output (resume)."""
        return {self.key(r) for r in self.existing_rows()}

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows (one flushed write)."""
        if self._writer is None:
            raise RuntimeError("Run.write before start_writing")  # internal misuse, not user input
        self._writer.write(rows)

    def write_manifest(self, status: str, **extra: Any) -> None:
        """Write the manifest (rank 0): config, fingerprint, status, versions, command line, times."""
        if self.rank != 0:
            return
        data = {
            "config": self.config,
            "fingerprint": fingerprint(self.config),
            "status": status,
            **self.info,
            **extra,
            "versions": versions(),
            "argv": sys.argv,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "started_at": round(self.first_started, 6),
            "seconds": round(self.previous_seconds + time.time() - self.started, 1),  # all sessions
        }
        atomic_write_text(manifest_path(self.out), json.dumps(data, indent=2, default=str) + "\n")

    def merge(self, order: Sequence[Any]) -> int:
        """Rank 0: write the final rows file (one row per key, the last written wins, in ``order``; others
        last), atomically, then remove the staging file and shards. Returns the number of rows."""
        by_key: dict[Any, dict[str, Any]] = {}
        for row in self.existing_rows():
            by_key[self.key(row)] = row
        position = {k: i for i, k in enumerate(order)}
        rows = sorted(by_key.values(), key=lambda r: position.get(self.key(r), len(position)))
        tmp = self.rows_file.with_name(self.rows_file.name + ".merging")
        if self.parquet:
            import pyarrow.parquet as pq

            pq.write_table(parquet_table(rows), tmp)
        else:
            with tmp.open("wb") as f:
                f.write("".join(encode_row(r) for r in rows).encode("ascii"))
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.rows_file)
        for part in _part_paths(self.rows_file):
            part.unlink()
        return len(rows)

    def finish(self, order: Sequence[Any], **extra: Any) -> int:
        """Close, merge in ``order`` and mark the manifest finished (rank 0); returns the number of rows."""
        self._close_writer()
        n = 0
        if self.rank == 0:
            n = self.merge(order)
            self.write_manifest("finished", n_rows=n, **extra)
        self.close()
        return n

    def stop(self, status: str, order: Sequence[Any], **extra: Any) -> int:
        """Close and keep every finished row (merged in ``order``), marking the manifest with ``status``
        ("interrupted", "failed: ..."); returns the number of rows kept."""
        self._close_writer()
        n = 0
        if self.rank == 0 and self.world == 1:
            n = self.merge(order)
            self.write_manifest(status, n_rows=n, **extra)
        elif self.rank == 0:
            self.write_manifest(status, **extra)
        self.close()
        return n

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        """Release the writer and the lock (idempotent)."""
        self._close_writer()
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """The batches of a run, fixed by the prompts' lengths and the batch size alone: longest first, ties
    in input order. Resumed and data-parallel runs form the very same batches (so even bfloat16 rows,
    which depend on the batch a prompt shares, equal an uninterrupted single-process run's)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    size = max(1, batch_size)
    return [order[i : i + size] for i in range(0, len(order), size)]


def require_unique(ids: Sequence[str], what: str = "prompt") -> None:
    """Raise RunError naming duplicated ids (a run keys its rows by id: duplicates would overwrite)."""
    seen: set[str] = set()
    dup: list[str] = []
    for i in ids:
        if i in seen and i not in dup:
            dup.append(i)
        seen.add(i)
    if dup:
        shown = ", ".join(repr(d) for d in dup[:5]) + (f" and {len(dup) - 5} more" if len(dup) > 5 else "")
        raise RunError(f"{what} ids must be unique, but {shown} appear more than once; fix the ids in the input")
