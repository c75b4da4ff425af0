"""Runs as a library concept: a model's rows on disk, written as they are computed, resumable,
data-parallel, with a manifest that says what made them. Torch-free (``tuco report`` reads runs here).

- ``store``: paths, rows (JSON lines no Unicode can split; Parquet), the merge;
- ``manifest``: configuration, fingerprint, versions;
- ``lock``: one writer per run;
- ``run``: the lifecycle behind one ``with open_run(...)`` block, and ``preflight`` before a model loads;
- ``results``: a run read back (``load_run``: rows, manifest, metrics, ``to_pandas()``).
"""

from tuco.runs.manifest import SCHEMA_VERSION, fingerprint, prompts_digest, read_manifest, versions
from tuco.runs.results import RunResults, load_run
from tuco.runs.run import Mode, RunHandle, check_output, launch, mode_of, open_run, preflight, refuse_existing, require_unique, row_id
from tuco.runs.store import (
    ROWS,
    SUFFIXES,
    RowWriter,
    atomic_write_text,
    encode_row,
    existing_rows,
    is_results_file,
    lock_path,
    make_readable,
    manifest_path,
    parquet_table,
    read_jsonl_rows,
    read_rows,
    rows_path,
    shard_path,
)

__all__ = [
    "ROWS",
    "SCHEMA_VERSION",
    "SUFFIXES",
    "Mode",
    "RowWriter",
    "RunResults",
    "RunHandle",
    "atomic_write_text",
    "check_output",
    "encode_row",
    "existing_rows",
    "fingerprint",
    "is_results_file",
    "launch",
    "load_run",
    "lock_path",
    "make_readable",
    "manifest_path",
    "mode_of",
    "open_run",
    "parquet_table",
    "preflight",
    "prompts_digest",
    "read_jsonl_rows",
    "read_manifest",
    "read_rows",
    "refuse_existing",
    "require_unique",
    "row_id",
    "rows_path",
    "shard_path",
    "versions",
]
