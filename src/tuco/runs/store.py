"""Where a run's files are and how rows are stored: JSON lines that no Unicode can split, a torn tail
ignored, Parquet with every field, one flushed write per batch, atomic merges. Torch-free.

A run's output is a results file (``scores.jsonl`` / ``scores.parquet``; manifest
``scores.manifest.json`` / ``scores.parquet.manifest.json`` beside it) or a run directory
(``DIR/rows.jsonl``, ``DIR/rows.manifest.json``, plus what an experiment adds: ``metrics.json``, plots).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tuco.errors import RunError

SUFFIXES = (".jsonl", ".parquet")
ROWS = "rows.jsonl"


# --------------------------------------------------------------------------------------------
# Paths.
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


def staging_path(out: str | Path) -> Path:
    """Where a single-process Parquet run appends its rows until the merge writes the Parquet file."""
    p = rows_path(out)
    return p.with_name(p.name + ".partial.jsonl")


def part_paths(out: str | Path) -> list[Path]:
    """Row files a run may leave beside its rows file: the Parquet staging file and per-rank shards."""
    rows = rows_path(out)
    shards = sorted(rows.parent.glob(rows.name + ".part-*.jsonl")) if rows.parent.exists() else []
    return [p for p in [staging_path(out), *shards] if p.exists()]


# --------------------------------------------------------------------------------------------
# Reading and writing rows.
# --------------------------------------------------------------------------------------------


def _clean(value: object) -> object:
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
    """Rows of a .jsonl or .parquet results file (a run directory: its ``rows.jsonl``)."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / ROWS
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()  # type: ignore[no-any-return]
    return read_jsonl_rows(p)


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


def existing_rows(out: str | Path) -> list[dict[str, Any]]:
    """Every complete row found for an output: the rows file, the staging file and the shards."""
    rows_file = rows_path(out)
    rows = read_rows(rows_file) if rows_file.exists() and rows_file.stat().st_size > 0 else []
    for part in part_paths(out):
        rows += read_jsonl_rows(part)
    return rows


def has_rows(out: str | Path) -> bool:
    """True when an output holds rows (its rows file, staging file or shards)."""
    rows_file = rows_path(out)
    return (rows_file.exists() and rows_file.stat().st_size > 0) or bool(part_paths(out))


def clear_rows(out: str | Path) -> None:
    """Remove an output's rows file, staging file and shards (overwrite, or a new run)."""
    for p in [rows_path(out), *part_paths(out)]:
        p.unlink(missing_ok=True)


def merge_rows(out: str | Path, order: Sequence[Any], key: Callable[[dict[str, Any]], Any]) -> int:
    """Write the final rows file: one row per key (the last written wins), in ``order`` (others last),
    atomically; then remove the staging file and shards. Returns the number of rows."""
    rows_file = rows_path(out)
    by_key: dict[Any, dict[str, Any]] = {}
    for row in existing_rows(out):
        by_key[key(row)] = row
    position = {k: i for i, k in enumerate(order)}
    rows = sorted(by_key.values(), key=lambda r: position.get(key(r), len(position)))
    tmp = rows_file.with_name(rows_file.name + ".merging")
    if rows_file.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(parquet_table(rows), tmp)
    else:
        with tmp.open("wb") as f:
            f.write("".join(encode_row(r) for r in rows).encode("ascii"))
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, rows_file)
    for part in part_paths(out):
        part.unlink()
    return len(rows)


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
