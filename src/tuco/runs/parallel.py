"""Data parallelism over prompts with torch.distributed: ranks from the launcher's environment.

``tuco score --processes N`` (and ``generate``) starts N ranks of the same command itself; ``torchrun``,
``accelerate launch`` and multi-node launchers work the same way (they set RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR / MASTER_PORT). Ranks started by tuco die with it: each gets the kernel's
parent-death signal, and they stay in the launcher's process group, so a kill of either reaches them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

LAUNCHED = "TUCO_LAUNCHED_RANK"  # set for ranks that tuco itself started


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the one that checks, merges and prints)."""
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


def die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent dies (and exit now if it already has)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_threads(processes: int) -> int:
    """CPU threads each of ``processes`` local ranks gets (OMP_NUM_THREADS, unless the user set it).

    Rows are equal bit for bit across process counts only at equal threads per process: a different
    thread count changes the order of float reductions (the last bit; <= 1e-7 in float32).
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return int(os.environ["OMP_NUM_THREADS"])
    return max(1, (os.cpu_count() or 1) // processes)


def launch(argv: list[str], processes: int, env: dict[str, str] | None = None) -> int:
    """Run ``tuco <argv>`` in ``processes`` local ranks (gloo on CPU, one GPU each on CUDA); returns the
    first non-zero exit code (the other ranks are then stopped), or 0.

    The ranks share this process's process group and receive SIGKILL if it dies, so no rank can outlive
    its launcher and keep writing.
    """
    port = _free_port()
    base = dict(os.environ, **(env or {}))
    base.setdefault("OMP_NUM_THREADS", str(rank_threads(processes)))
    procs = []
    for r in range(processes):
        rank_env = dict(
            base,
            RANK=str(r),
            WORLD_SIZE=str(processes),
            LOCAL_RANK=str(r),
            LOCAL_WORLD_SIZE=str(processes),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            **{LAUNCHED: "1"},
        )
        procs.append(subprocess.Popen([sys.executable, "-m", "tuco", *argv], env=rank_env, preexec_fn=die_with_parent))
    code = 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
            if failed:
                code = failed[0]
                break
            time.sleep(0.1)
        else:
            code = next((p.returncode for p in procs if p.returncode != 0), 0)
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return code
