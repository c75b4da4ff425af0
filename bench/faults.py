"""Fault injection: kill real `tuco score` runs with SIGKILL at seeded random moments (and inside the merge
and the manifest write), resume them, and check the final rows equal an uninterrupted run's: no row
lost, none duplicated, no torn line, manifest `finished`. Prints one JSON line.

    python bench/faults.py --kills 12 --seed 0            # 1 process
    python bench/faults.py --kills 4 --processes 2        # data-parallel ranks (the launcher is killed)

tests/test_faults.py runs a small seeded version of the same (slow tier).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}

# A child that runs score_to and SIGKILLs itself at a chosen point of the write path.
KILL_INSIDE = r"""
import os, signal, sys
from pathlib import Path
where, base, tuned, prompts, out = sys.argv[1:6]
real_replace, real_write = os.replace, Path.write_text
def replace(src, dst):
    if where == "merge" and str(dst).endswith(("rows.jsonl", ".jsonl")) and ".manifest" not in str(dst):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)
def write_text(self, text, *a, **k):
    if where == "manifest" and "manifest" in self.name and '"finished"' in text:
        real_write(self, text[: len(text) // 2], *a, **k)  # half a manifest, then the kill
        os.kill(os.getpid(), signal.SIGKILL)
    return real_write(self, text, *a, **k)
os.replace = replace  # the module object every writer of tuco.runs uses
Path.write_text = write_text
from tuco.cli.main import main
args = ["score", "--base", base, "--tuned", tuned, "--prompts", prompts, "--out", out, "--batch-size", "2", "--device", "cpu"]
sys.exit(main([*args, "--resume"]))
"""


def make_pair(root: Path) -> tuple[Path, Path]:
    """A tiny llama pair on disk (the same one every time: seeded)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from tuco.demo.tiny import save_tiny_pair

    return save_tiny_pair(root, "llama")


def make_prompts(path: Path, n: int) -> Path:
    """``n`` prompts of varied lengths, with Unicode separators in some of them."""
    lines = []
    for i in range(n):
        text = f"prompt {i} " + "word " * (i % 11) + ("x\u2028y" if i % 7 == 0 else "")
        lines.append(json.dumps({"id": f"p{i}", "prompt": text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def score_cmd(base: Path, tuned: Path, prompts: Path, out: Path, processes: int, resume: bool) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "tuco",
        "score",
        "--base",
        str(base),
        "--tuned",
        str(tuned),
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--device",
        "cpu",
    ]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    return cmd + (["--resume"] if resume else [])


def read_lines(path: Path) -> list[dict]:
    """Every line of the final rows file (a torn or malformed line raises)."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), "torn last line"
    return [json.loads(line) for line in data.split(b"\n") if line]


def children_of(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().split(") ", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().split(") ", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def rows_written(out: Path) -> int:
    """Rows a running job has written so far (its .jsonl rows file, or its staging file, and its ranks' shards)."""
    n = 0
    for f in [out, out.with_name(out.name + ".partial.jsonl"), *out.parent.glob(out.name + ".part-*.jsonl")]:
        try:
            n += f.read_bytes().count(b"\n")
        except OSError:
            continue
    return n


def kill_at_random(cmd: list[str], out: Path, rng: random.Random, processes: int, n_rows: int) -> dict:
    """Start a run and SIGKILL it (the launcher only, for several ranks) once it has written a random number
    of its ``n_rows`` rows (between 10% and 80%): the kill always lands in the middle of the run, whatever the
    machine's load; report what died."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    target = rng.randint(max(1, n_rows // 10), max(1, 8 * n_rows // 10))
    ranks: list[int] = []
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if processes > 1:
            ranks = children_of(proc.pid)  # the ranks seen before the kill (a slow start is not a test)
        if rows_written(out) >= target and (processes == 1 or len(ranks) >= processes):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while any(alive(r) for r in ranks) and time.time() < deadline:
        time.sleep(0.1)
    return {"orphans": sum(alive(r) for r in ranks), "ranks": len(ranks)}


def run_faults(kills: int, seed: int, processes: int = 1, n_prompts: int = 800, inside: bool = True) -> dict:
    """Kill and resume until finished; compare with an uninterrupted run. Returns the counts."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base, tuned = make_pair(root / "pair")
        prompts = make_prompts(root / "p.jsonl", n_prompts)
        ref = root / "ref.jsonl"
        from tuco.runs.parallel import rank_threads

        # the reference runs with the threads each rank gets: bit-for-bit equality holds at equal threads per process
        ref_env = {**ENV, "OMP_NUM_THREADS": str(rank_threads(processes))} if processes > 1 else ENV
        subprocess.run(score_cmd(base, tuned, prompts, ref, 1, False), check=True, env=ref_env, capture_output=True)
        expected = read_lines(ref)
        survived, orphans, seen, mid_run, points = 0, 0, 0, 0, []
        for k in range(kills):
            out = root / f"run{k}.jsonl"
            got = kill_at_random(score_cmd(base, tuned, prompts, out, processes, False), out, rng, processes, len(expected))
            orphans += got["orphans"]
            seen += got["ranks"]
            points.append("random")
            manifest_file = out.with_name(out.stem + ".manifest.json")
            status = json.loads(manifest_file.read_text()).get("status") if manifest_file.exists() else "not started"
            mid_run += status != "finished"  # the kill cut a run short (not one that had already finished)
            if inside and k % 3 == 2:  # then a kill inside the merge or the manifest write of the resumed run
                where = "merge" if k % 2 else "manifest"
                subprocess.run(
                    [sys.executable, "-c", KILL_INSIDE, where, str(base), str(tuned), str(prompts), str(out)],
                    env=ref_env,
                    capture_output=True,
                )  # one process resuming a data-parallel run: at the ranks' threads, so its rows are theirs to the bit
                points.append(where)
            # --resume also starts a run the kill cut before it wrote anything
            done = subprocess.run(score_cmd(base, tuned, prompts, out, processes, True), env=ENV, capture_output=True, text=True)
            if done.returncode != 0:
                raise AssertionError(f"resume failed after kill {k}: {done.stderr[-1500:]}")
            rows = read_lines(out)
            manifest = json.loads(out.with_name(out.stem + ".manifest.json").read_text())
            assert manifest["status"] == "finished", manifest["status"]
            assert len({r["id"] for r in rows}) == len(rows), "duplicate ids"
            assert rows == expected, "rows differ from the uninterrupted run"
            assert not list(root.glob(f"run{k}.jsonl.part-*")), "shards left behind"
            survived += 1
        return {
            "kills": kills + sum(p != "random" for p in points),
            "kill_points": points,
            "random_kills_mid_run": mid_run,
            "runs_resumed": survived,
            "rows_checked": survived * len(expected),
            "rows_lost": 0,
            "duplicates": 0,
            "torn_lines": 0,
            "orphan_ranks": orphans,
            "ranks_seen": seen,
            "processes": processes,
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kills", type=int, default=9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--prompts", type=int, default=800)
    a = p.parse_args()
    t0 = time.time()
    result = run_faults(a.kills, a.seed, a.processes, a.prompts)
    result["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
