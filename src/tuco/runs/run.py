"""A run's lifecycle behind one ``with`` block: refuse / resume / overwrite decided in one place, the
lock, the manifest, rank coordination, and the merge. Torch-free.

    with open_run("runs/x", config, mode=mode_of(resume, overwrite)) as run:
        for batch in plan:
            if not batch_keys <= run.done:
                run.write(rows_of(batch))
    # merged in order, manifest "finished"; an exception leaves every finished row and says why

Integrity rules, each tested by killing real runs:
- every batch is one flushed write; a resumed run recomputes whole batches, so a batch cut short by a
  kill is redone and the final file holds one row per key, in input order;
- a second writer fails at once (the lock) instead of interleaving lines;
- the manifest carries a fingerprint of everything that determines the rows, and a digest of each
  measurement's planned prompts; ``resume`` refuses a different one and names what differs; an existing
  output is refused unless ``resume`` or ``overwrite`` is given.
In a data-parallel run every rank enters the same block: rank 0 checks, locks, writes the manifest and
merges; each rank writes its own shard; the block's barriers order them, so no caller can get the
protocol wrong.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from tuco.errors import RunError
from tuco.runs import lock as locks
from tuco.runs.manifest import SCHEMA_VERSION, differences, fingerprint, read_manifest, versions
from tuco.runs.parallel import Ranks, barrier, init
from tuco.runs.parallel import ranks as env_ranks
from tuco.runs.store import (
    RowWriter,
    atomic_write_text,
    clear_rows,
    existing_rows,
    has_rows,
    is_results_file,
    manifest_path,
    merge_rows,
    read_rows,
    rows_path,
    shard_path,
    staging_path,
)

Mode = Literal["new", "resume", "overwrite"]
RowKey = Callable[[dict[str, Any]], Any]


def mode_of(resume: bool, overwrite: bool) -> Mode:
    """The one place that turns --resume / --overwrite into a mode (both: RunError)."""
    if resume and overwrite:
        raise RunError("give --resume (continue the run) or --overwrite (replace it), not both")
    return "resume" if resume else "overwrite" if overwrite else "new"


def row_id(row: dict[str, Any]) -> str:
    """The identity of a row: its ``id``."""
    return str(row.get("id"))


# --------------------------------------------------------------------------------------------
# Before any work: is this output usable?
# --------------------------------------------------------------------------------------------


def check_output(out: str | Path, *, directory_ok: bool = True, file_ok: bool = True) -> Path:
    """Validate an output's path before any work: a .jsonl/.parquet file or (``directory_ok``) a run
    directory, pyarrow for Parquet, a parent that exists or can be created and is writable. Creates the
    directory; returns the path."""
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
    elif p.suffix[1:].isalpha() and not p.is_dir():  # x.csv, x.json: meant as a file of another format
        raise RunError(
            f"output {str(out)!r} ends in {p.suffix}, which is not a rows format: give a .jsonl or .parquet file, or a run directory "
            "(a name without a suffix)"
        )
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
    return p


def refuse_existing(out: str | Path) -> None:
    """Raise RunError when ``out`` already holds a run (rows, shards or a manifest)."""
    old = read_manifest(out)
    if has_rows(out) or old:
        n = len(existing_rows(out))
        raise RunError(
            f"{out} already holds a run ({n} rows, status {old.get('status', 'unknown')}); "
            "add --resume to continue it, --overwrite to replace it, or choose another --out"
        )


def preflight(out: str | Path, mode: Mode, *, directory_ok: bool = True, file_ok: bool = True) -> Path:
    """Everything about an output that can be checked before a model loads: its path (``check_output``),
    no run already there for a new run, nobody else writing it. ``resume`` is checked against the
    configuration when the run opens."""
    p = check_output(out, directory_ok=directory_ok, file_ok=file_ok)
    if mode == "new":
        refuse_existing(p)
    locks.probe(p)
    return p


def check_resume(out: str | Path, known: dict[str, Any]) -> None:
    """``--resume`` before any model loads: the configuration values known without the model (``known``;
    None: the key is absent) against those the run in ``out`` began with; RunError naming what differs.
    The whole fingerprint is checked again when the run opens."""
    old = read_manifest(out).get("config")
    if not isinstance(old, dict):
        return
    diff = differences({k: old.get(k) for k in known}, known)
    if diff:
        raise RunError(
            f"--resume: {out} was made with a different configuration ({'; '.join(diff[:4])}); use the same options, or --overwrite"
        )


# --------------------------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------------------------


class RunHandle:
    """An open run, as its ``with`` block sees it: what was already written (``done``), ``write``, the
    order rows are merged in (``expect``), and manifest notes. Made only by ``open_run``."""

    def __init__(self, out: Path, config: dict[str, Any], mode: Mode, key: RowKey, r: Ranks, info: dict[str, Any]) -> None:
        self.out = out
        self.rows_file = rows_path(out)
        self.config = config
        self.mode = mode
        self.key = key
        self.rank, self.world = r.rank, r.world
        self.info = {"schema": SCHEMA_VERSION, **info}
        self.previous: dict[str, Any] = {}
        self.done: set[Any] = set()
        self.order: list[Any] = []
        self.n_rows = 0
        self.status = "running"
        self._known: set[Any] = set()
        self._writer: RowWriter | None = None
        self._lock: locks.RunLock | None = None
        self._started = time.time()
        self._first_started = self._started
        self._previous_seconds = 0.0

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the one that checks, merges and writes the manifest)."""
        return self.rank == 0

    @property
    def resumed(self) -> bool:
        """True when this run continues an earlier one."""
        return self.mode == "resume"

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows now (one flushed write) and count them done."""
        if self._writer is None:
            raise RuntimeError("the run is not open")  # internal misuse, not user input
        self._writer.write(rows)
        self.done.update(self.key(r) for r in rows)

    def expect(self, keys: Iterable[Any]) -> None:
        """Add keys to the order the final rows are merged in (first mention wins; rows whose key was never
        expected go last, in the order they were written)."""
        for k in keys:
            if k not in self._known:
                self._known.add(k)
                self.order.append(k)

    def check_plan(self, tag: str, digest: str) -> None:
        """Record the digest of one measurement's planned prompts; on resume, refuse one that changed
        (a data file edited since the run began would otherwise mix old and new rows)."""
        plans = self.info.setdefault("plans", {})
        old = (self.previous.get("plans") or {}).get(tag)
        if self.resumed and old is not None and old != digest:
            raise RunError(
                f"--resume: the prompts of {tag or 'the run'} differ from those the run began with (a data file or "
                "the tokenizer changed); restore them, or start again with --overwrite"
            )
        if plans.get(tag) != digest:
            plans[tag] = digest
            self.write_manifest("running")

    def note(self, **fields: Any) -> None:
        """Fields the manifest records (counts, skipped prompts, data revisions)."""
        self.info.update(fields)

    def rows(self) -> list[dict[str, Any]]:
        """Every row written so far for this output (all sessions and ranks), one per key, in order."""
        by_key = {self.key(r): r for r in existing_rows(self.out)}
        position = {k: i for i, k in enumerate(self.order)}
        return sorted(by_key.values(), key=lambda r: position.get(self.key(r), len(position)))

    def write_manifest(self, status: str, **extra: Any) -> None:
        """Write the manifest (rank 0): config, fingerprint, status, versions, command line, times."""
        if not self.is_main:
            return
        self.status = status
        data = {
            "config": self.config,
            "fingerprint": fingerprint(self.config),
            "status": status,
            **self.info,
            **extra,
            "versions": versions(),
            "argv": sys.argv,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "started_at": round(self._first_started, 6),
            "seconds": round(self._previous_seconds + time.time() - self._started, 1),  # all sessions
        }
        atomic_write_text(manifest_path(self.out), json.dumps(data, indent=2, default=str) + "\n")

    # ---- lifecycle (open_run's) ----

    def _prepare(self) -> None:
        """Rank 0, under the lock: refuse / resume / overwrite, then the manifest says running."""
        old = read_manifest(self.out)
        if self.mode == "new":
            refuse_existing(self.out)  # checked again under the lock
        if self.mode != "resume":
            clear_rows(self.out)
        elif has_rows(self.out) or old:
            if not old:
                raise RunError(f"{self.out} has rows but no manifest, so what made them is unknown; start again with --overwrite")
            if old.get("fingerprint") != fingerprint(self.config):
                diff = differences(old.get("config", {}), self.config)
                raise RunError(
                    f"--resume: {self.out} was made with a different configuration ("
                    + "; ".join(diff[:4] or ["tuco version"])
                    + "); use the same options, or --overwrite"
                )
            self._previous_seconds = float(old.get("seconds") or 0.0)
            self._first_started = float(old.get("started_at") or self._started)
            self.info["plans"] = dict(old.get("plans") or {})  # what each measurement planned: checked again
            earlier = list(old.get("earlier_versions") or [])  # the code that wrote the rows kept so far
            if old.get("versions") and old["versions"] != versions() and old["versions"] not in earlier:
                earlier.append(old["versions"])
            if earlier:
                self.info["earlier_versions"] = earlier
        self.write_manifest("running")

    def _target(self) -> Path:
        if self.world > 1:
            return shard_path(self.out, self.rank)
        if self.rows_file.suffix.lower() == ".parquet":
            return staging_path(self.out)
        return self.rows_file

    def _open(self, device: str) -> None:
        check_output(self.out)
        if self.is_main:
            if not locks.held_by_launcher(self.out):
                self._lock = locks.RunLock(self.out).acquire()
            try:
                self._prepare()
            except BaseException:
                self._release()
                raise
        init(Ranks(self.rank, self.world), device)
        barrier()  # rank 0 has checked and prepared the output
        if self.resumed:
            self.previous = read_manifest(self.out)  # rank 0 carried the earlier session's plans into it
            self.done = {self.key(r) for r in existing_rows(self.out)}
        barrier()  # every rank has read what exists before anyone appends
        self._writer = RowWriter(self._target(), append=True)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _release(self) -> None:
        self._close_writer()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _finish(self, finalize: Callable[[list[dict[str, Any]]], dict[str, Any]] | None) -> None:
        self._close_writer()
        barrier()  # every rank's shard is complete
        if self.is_main:
            self.n_rows = merge_rows(self.out, self.order, self.key)
            extra = finalize(read_rows(self.rows_file)) if finalize is not None else {}
            self.write_manifest("finished", n_rows=self.n_rows, **extra)
        self._release()

    def _stop(self, status: str) -> None:
        """Keep every finished row (merged when alone) and mark the manifest ``status``."""
        self._close_writer()
        if self.is_main and self.world == 1:
            self.n_rows = merge_rows(self.out, self.order, self.key)
            self.write_manifest(status, n_rows=self.n_rows)
        elif self.is_main:
            self.write_manifest(status)
        self._release()


@contextmanager
def open_run(
    out: str | Path,
    config: dict[str, Any],
    *,
    mode: Mode = "new",
    key: RowKey = row_id,
    ranks: Ranks | None = None,
    info: dict[str, Any] | None = None,
    device: str = "cpu",
    finalize: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
) -> Iterator[RunHandle]:
    """Open a run for writing; on leaving the block, merge its rows in order and mark it finished.

    ``config``: everything that determines the rows (its fingerprint guards resume); ``info``: what else
    the manifest records; ``key``: a row's identity (unique within the run); ``ranks``: this process's
    place in a data-parallel run (default: from the environment); ``device``: picks the process-group
    backend when there are several ranks. ``finalize(rows)`` (rank 0, after the merge) computes what
    the finished manifest adds (an experiment's metrics and plots). An exception in the block (or in
    ``finalize``) keeps every finished row and marks the manifest "interrupted" or "failed: why".
    """
    r = ranks or env_ranks()
    handle = RunHandle(Path(out).expanduser(), config, mode, key, r, dict(info or {}))
    handle._open(device)
    try:
        yield handle
        handle._finish(finalize)
    except KeyboardInterrupt:
        handle._stop("interrupted")
        raise
    except Exception as err:
        handle._stop(f"failed: {type(err).__name__}: {str(err)[:300]}")
        raise


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


def launch(out: str | Path, argv: list[str], processes: int) -> int:
    """Run ``tuco <argv>`` as ``processes`` data-parallel ranks writing ``out``, holding its lock for them
    for their whole life; returns their exit code (``tuco.runs.parallel.launch``)."""
    from tuco.runs.parallel import launch as start_ranks

    with locks.held_for_ranks(out) as env:
        return start_ranks(argv, processes, env=env)
