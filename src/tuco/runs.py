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
from collections.abc import Iterable
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


class RowWriter:
    """Appends result rows to a .jsonl or .parquet file as they are computed."""

    def __init__(self, out: str | Path) -> None:
        self.out = check_output_path(out)
        self.parquet = self.out.suffix.lower() == ".parquet"
        self.target = self.out.with_name(self.out.name + ".partial.jsonl") if self.parquet else self.out
        self.count = 0
        self._file = self.target.open("w", encoding="utf-8")

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write rows and flush, so they survive an interrupted run."""
        text = "".join(json.dumps(_clean(r), ensure_ascii=False) + "\n" for r in rows)
        if text:
            self._file.write(text)
            self._file.flush()
            self.count += text.count("\n")

    def close(self) -> Path:
        """Finish the file (for Parquet: convert the partial JSONL atomically); returns the output path."""
        self._file.close()
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            rows = read_rows(self.target)
            tmp = self.out.with_name(self.out.name + ".tmp")
            pq.write_table(pa.Table.from_pylist(rows), tmp)
            os.replace(tmp, self.out)
            self.target.unlink()
        return self.out


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl or .parquet result file."""
    p = Path(path)
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()
    with p.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
