"""Result files: rows written as they are computed (JSONL or Parquet) and a manifest beside them.

JSONL rows go straight to the output file, one flushed write per batch, so an interrupted run keeps
every batch it finished. Parquet cannot be appended to safely, so its rows go to
``<out>.partial.jsonl`` first and are converted in one atomic step when the run finishes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tuco.errors import TucoError

SUFFIXES = (".jsonl", ".parquet")


def check_output_path(path: str | Path) -> Path:
    """Validate an output path before any work: known suffix, writable parent, pyarrow for Parquet."""
    p = Path(path).expanduser()
    if p.suffix.lower() not in SUFFIXES:
        raise TucoError(f"output {str(path)!r} must end in .jsonl or .parquet")
    if p.is_dir():
        raise TucoError(f"output {str(path)!r} is a directory: give a file name ending in .jsonl or .parquet")
    if not p.parent.exists():
        raise TucoError(f"output directory {str(p.parent)!r} does not exist: create it first")
    if p.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as err:
            raise TucoError("writing .parquet needs pyarrow: `pip install 'tuco[parquet]'` (or write .jsonl)") from err
    return p


def manifest_path(out: str | Path) -> Path:
    """``scores.jsonl`` -> ``scores.manifest.json``."""
    p = Path(out)
    return p.with_name(p.stem + ".manifest.json")


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


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_manifest(out: str | Path, config: dict[str, Any], **extra: Any) -> Path:
    """Write ``<stem>.manifest.json`` beside ``out``: the config, versions, command line, times."""
    data = {"config": config, "versions": versions(), "argv": sys.argv, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
    path = manifest_path(out)
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
    return path


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf floats become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _part_paths(out: Path) -> list[Path]:
    """Row files a run may leave beside ``out``: the Parquet staging file and per-rank shards."""
    staged = [out.with_name(out.name + ".partial.jsonl")]
    shards = sorted(out.parent.glob(out.name + ".part-*.jsonl"))
    return [p for p in staged + shards if p.exists()]


def shard_path(out: str | Path, rank: int) -> Path:
    """Where rank ``rank`` of a data-parallel run writes its rows."""
    p = Path(out)
    return p.with_name(f"{p.name}.part-{rank}.jsonl")


def _complete_prefix(path: Path) -> int:
    """Byte length of the complete lines of a JSONL file (a write cut by SIGKILL leaves a tail)."""
    data = path.read_bytes()
    return data.rfind(b"\n") + 1


class RowWriter:
    """Appends result rows, as they are computed, to a JSONL file: the output itself (``.jsonl``), a
    staging file (``.parquet``) or, in a data-parallel run, this rank's shard.

    Every batch is one flushed write of whole lines; readers ignore an unterminated last line, so a
    run killed at any moment (SIGKILL included) leaves only complete rows. ``resume=True`` keeps the
    rows already in the target (cutting a torn last line) and appends.
    """

    def __init__(self, out: str | Path, *, rank: int | None = None, resume: bool = False) -> None:
        self.out = check_output_path(out)
        self.parquet = self.out.suffix.lower() == ".parquet"
        if rank is not None:
            self.target = shard_path(self.out, rank)
        elif self.parquet:
            self.target = self.out.with_name(self.out.name + ".partial.jsonl")
        else:
            self.target = self.out
        self.count = 0
        if resume and self.target.exists():
            with self.target.open("r+b") as f:
                f.truncate(_complete_prefix(self.target))
            self._file = self.target.open("a", encoding="utf-8")
        else:
            self._file = self.target.open("w", encoding="utf-8")

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write rows and flush, so they survive an interrupted run."""
        text = "".join(json.dumps(_clean(r), ensure_ascii=False) + "\n" for r in rows)
        if text:
            self._file.write(text)
            self._file.flush()
            self.count += text.count("\n")

    def close(self) -> Path:
        """Close this writer's file (rows stay where they are until ``merge``); returns its path."""
        self._file.close()
        return self.target


def existing_rows(out: str | Path) -> list[dict[str, Any]]:
    """Every complete row a run has left for ``out``: the output file, the staging file and the shards."""
    p = Path(out)
    rows = read_rows(p) if p.exists() else []
    for part in _part_paths(p):
        rows += read_rows(part)
    return rows


def clear_outputs(out: str | Path, keep_ranks: int = 0) -> None:
    """Remove a previous run's output, staging file and shards (a fresh, non-resumed run).

    Shards of ranks below ``keep_ranks`` are left to their own ranks, which truncate them.
    """
    p = Path(out)
    if p.exists():
        p.unlink()
    for part in _part_paths(p):
        rank = part.name.rsplit(".part-", 1)[-1].removesuffix(".jsonl")
        if not (rank.isdigit() and int(rank) < keep_ranks):
            part.unlink()


def row_id(row: dict[str, Any]) -> str:
    """The identity of a score row: its prompt id."""
    return str(row.get("id"))


def merge(out: str | Path, order: list[str], key: Callable[[dict[str, Any]], Any] = row_id) -> int:
    """Write the final output: every row found for ``out``, one per ``key`` (the last written wins),
    in the order of ``order`` (a list of keys; others go last); atomic; then remove the staging file
    and shards. Returns the number of rows."""
    p = Path(out)
    by_key: dict[Any, dict[str, Any]] = {}
    for row in existing_rows(p):
        by_key[key(row)] = row
    rank = {k: i for i, k in enumerate(order)}
    rows = sorted(by_key.values(), key=lambda r: rank.get(key(r), len(rank)))
    tmp = p.with_name(p.name + ".tmp")
    if p.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), tmp)
    else:
        with tmp.open("w", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    os.replace(tmp, p)
    for part in _part_paths(p):
        part.unlink()
    return len(rows)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl or .parquet result file (an unterminated last JSONL line is a torn write: skipped)."""
    p = Path(path)
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()
    data = p.read_bytes()
    complete = data[: data.rfind(b"\n") + 1].decode("utf-8")
    return [json.loads(line) for line in complete.splitlines() if line.strip()]
