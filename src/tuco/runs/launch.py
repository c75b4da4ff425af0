"""Everything about a run's output that is decided before a model loads, in one library call: the output
refused, resumed or overwritten (checked on rank 0; the other ranks only check its path), a resume's
configuration against what the caller already knows, and for ``processes`` > 1 the data-parallel ranks
started (each re-runs the same command as one rank; the launcher holds the output's lock for them).

    launched = prepare_output("runs/x", resume=False, overwrite=False, processes=4, argv=sys.argv[1:])
    if launched is not None:      # this process started the ranks; they did the work
        sys.exit(launched)

Python callers of ``score_to`` / ``generate_to`` / ``run_experiment`` get the same refusals from
``open_run`` when the run opens (after their model has loaded); the CLI calls this first so a bad output
is refused before minutes of loading. Ranks come from the environment once (``tuco.runs.parallel.ranks``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuco.errors import ConfigError
from tuco.runs.parallel import Ranks, ranks
from tuco.runs.run import check_output, check_resume, launch, mode_of, preflight


def strip_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == name:
            skip = True
            continue
        if a.startswith(name + "="):
            continue
        out.append(a)
    return out


def prepare_output(
    out: str | Path | None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    file_ok: bool = True,
    known: dict[str, Any] | None = None,
    processes: int = 1,
    argv: list[str] | None = None,
    one_run: bool = True,
    rank: Ranks | None = None,
) -> int | None:
    """Check the output before a model loads, then start ``processes`` ranks when asked (returns their exit
    code; None: this process does the work). ``known``: the configuration values a ``--resume`` must match
    (checked against the run's manifest); ``one_run``: the ranks write one run (its lock is held for them);
    False: several runs (a suite), each locked by its rank 0."""
    from tuco.runs import parallel

    if processes < 1:
        raise ConfigError(f"--processes must be >= 1, got {processes}")
    mode = mode_of(resume, overwrite)
    if mode != "new" and not out:
        raise ConfigError("--resume and --overwrite need --out (the run to continue or replace)")
    r = rank or ranks()
    if out:
        if r.is_main:
            preflight(out, mode, file_ok=file_ok)
            if resume and known:
                check_resume(out, known)
        else:
            check_output(out, file_ok=file_ok)
    if processes == 1 or r.world > 1:
        return None
    if not out:
        raise ConfigError("data-parallel runs (--processes, torchrun, accelerate launch) need --out")
    rest = strip_option(list(argv or []), "--processes")
    return launch(out, rest, processes) if one_run else parallel.launch(rest, processes)
