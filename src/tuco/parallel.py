"""Data parallelism over prompts with torch.distributed: ranks from the launcher's environment.

``torchrun``, ``accelerate launch`` and ``tuco score --processes N`` (which runs torchrun) all set
RANK / WORLD_SIZE / LOCAL_RANK (and MASTER_ADDR / MASTER_PORT); multi-node runs use the same
variables from the standard launcher configuration. Each rank scores its share of the prompts and
writes its own shard; rank 0 merges the shards after a barrier.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks() -> Ranks:
    """Rank, world size and local rank from the launcher's environment variables."""
    return Ranks(
        rank=int(os.environ.get("RANK", 0)),
        world=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def device_for(r: Ranks, requested: str | None) -> str:
    """The device of this rank: ``cuda:LOCAL_RANK`` when CUDA is used by several ranks, else as asked."""
    import torch

    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if r.world > 1 and requested == "cuda":
        return f"cuda:{r.local_rank}"
    return requested


def init(r: Ranks, device: str) -> None:
    """Join the process group (gloo on CPU, nccl on CUDA) when there is more than one rank."""
    import torch.distributed as dist

    if r.world > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(hours=6))


def barrier() -> None:
    """Wait for every rank (no-op when alone)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def relaunch(argv: list[str], processes: int) -> int:
    """Run ``tuco <argv>`` in ``processes`` local ranks with torchrun; returns its exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           "-m", "tuco", *argv]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    return subprocess.run(cmd, env=env).returncode


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
