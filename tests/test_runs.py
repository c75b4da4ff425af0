"""Runs: rows that survive any Unicode, refuse/resume/overwrite, fingerprints, the lock, merge, plans."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from tuco.errors import RunError
from tuco.measures.batching import plan_batches
from tuco.runs import (
    RowWriter,
    encode_row,
    lock_path,
    manifest_path,
    mode_of,
    open_run,
    preflight,
    read_rows,
    require_unique,
    rows_path,
    shard_path,
)
from tuco.runs.lock import RunLock
from tuco.runs.parallel import Ranks

HOSTILE = ["x\u2028y", "a\u2029b", "c\u0085d", "e\rf", "tab\tand\x00nul\x1b[31m", "\ufeffbom", "😀 emoji", "\ud7ff", "line\nbreak"]


def test_rows_survive_every_separator(tmp_path):
    w = RowWriter(tmp_path / "r.jsonl", append=False)
    rows = [{"id": str(i), "prompt": t, "tuco": 0.5} for i, t in enumerate(HOSTILE)]
    w.write(rows)
    w.close()
    assert read_rows(tmp_path / "r.jsonl") == rows
    assert (tmp_path / "r.jsonl").read_bytes().count(b"\n") == len(rows)
    assert all(ord(c) < 128 for c in encode_row(rows[0]))


def test_torn_tail_is_ignored_and_cut_before_appending(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_bytes(b'{"id": "0"}\n{"id": "1", "tu')
    assert read_rows(p) == [{"id": "0"}]
    w = RowWriter(p, append=True)
    w.write([{"id": "2"}])
    w.close()
    assert read_rows(p) == [{"id": "0"}, {"id": "2"}]


def test_a_corrupt_complete_line_is_a_clear_error(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"id": "0"}\n{"id": "1"}{"id": "2"}\n')
    with pytest.raises(RunError, match="line 2 is not a result row"):
        read_rows(p)


CONFIG = {"verb": "score", "alpha": 1.0}


def _finished(out, rows, config=None, mode="new"):
    with open_run(out, config or CONFIG, mode=mode) as run:
        run.write(rows)


def test_existing_output_is_refused_resumed_or_overwritten(tmp_path):
    out = tmp_path / "s.jsonl"
    _finished(out, [{"id": "a"}, {"id": "b"}])
    with pytest.raises(RunError, match="already holds a run \\(2 rows, status finished\\); add --resume"):
        _finished(out, [])
    with open_run(out, CONFIG, mode="resume") as run:
        assert run.done == {"a", "b"}
    _finished(out, [{"id": "c"}], mode="overwrite")
    assert read_rows(out) == [{"id": "c"}]
    with pytest.raises(RunError, match="not both"):
        mode_of(True, True)


def test_manifest_seconds_add_up_over_resumed_sessions(tmp_path):
    out = tmp_path / "s.jsonl"
    _finished(out, [{"id": "a"}])
    m = json.loads(manifest_path(out).read_text())
    m["seconds"] = 100.0  # as if the first session had taken 100 s
    manifest_path(out).write_text(json.dumps(m))
    _finished(out, [], mode="resume")
    assert 100.0 <= json.loads(manifest_path(out).read_text())["seconds"] < 110.0
    _finished(out, [], mode="overwrite")
    assert json.loads(manifest_path(out).read_text())["seconds"] < 10.0  # a new run starts from zero


def test_a_resumed_run_keeps_the_versions_that_wrote_its_earlier_rows(tmp_path):
    """The manifest's versions are the session that finished the run; the code of every earlier session whose
    rows it keeps stays listed (earlier_versions), so a resumed run never claims rows another commit wrote."""
    out = tmp_path / "s.jsonl"
    _finished(out, [{"id": "a"}])
    m = json.loads(manifest_path(out).read_text())
    old = dict(m["versions"], tuco_git_sha="0" * 40)
    manifest_path(out).write_text(json.dumps(m | {"versions": old}))
    _finished(out, [{"id": "b"}], mode="resume")
    m = json.loads(manifest_path(out).read_text())
    assert m["earlier_versions"] == [old] and m["versions"]["tuco_git_sha"] != "0" * 40
    _finished(out, [], mode="resume")  # the same code again: nothing new to list
    assert json.loads(manifest_path(out).read_text())["earlier_versions"] == [old]
    _finished(out, [], mode="overwrite")
    assert "earlier_versions" not in json.loads(manifest_path(out).read_text())


def test_resume_refuses_another_configuration_and_names_it(tmp_path):
    out = tmp_path / "s.jsonl"
    _finished(out, [{"id": "a"}], {"verb": "score", "alpha": 1.0, "checkpoints": ["b", "t"]})
    with pytest.raises(RunError, match="alpha: 1.0 before, 0.5 now"):
        _finished(out, [], {"verb": "score", "alpha": 0.5, "checkpoints": ["b", "t"]}, mode="resume")
    with pytest.raises(RunError, match="checkpoints"):
        _finished(out, [], {"verb": "score", "alpha": 1.0, "checkpoints": ["b", "other"]}, mode="resume")


def test_resume_refuses_a_measurement_whose_prompts_changed(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), open_run(out, CONFIG) as run:
        run.check_plan("0:k=4", "digest-a")
        run.write([{"id": "a"}])
        raise KeyboardInterrupt
    assert json.loads(manifest_path(out).read_text())["plans"] == {"0:k=4": "digest-a"}
    with pytest.raises(RunError, match="the prompts of 0:k=4 differ"), open_run(out, CONFIG, mode="resume") as run:
        run.check_plan("0:k=4", "digest-b")
    with open_run(out, CONFIG, mode="resume") as run:  # the same prompts: resumed, the plan kept
        run.check_plan("0:k=4", "digest-a")
        assert run.done == {"a"}
    assert json.loads(manifest_path(out).read_text())["status"] == "finished"


def test_an_exception_keeps_the_rows_and_says_why(tmp_path):
    out = tmp_path / "s.jsonl"
    with pytest.raises(ValueError), open_run(out, CONFIG) as run:
        run.write([{"id": "a"}])
        raise ValueError("boom")
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["status"] == "failed: ValueError: boom" and manifest["n_rows"] == 1 and read_rows(out) == [{"id": "a"}]


def test_rows_without_a_manifest_are_not_resumed_blindly(tmp_path):
    out = tmp_path / "s.jsonl"
    out.write_text('{"id": "a"}\n')
    with pytest.raises(RunError, match="no manifest"):
        _finished(out, [], mode="resume")


def _hold_lock(path, ready, release):
    lock = RunLock(path).acquire()
    ready.set()
    release.wait(30)
    lock.release()


def test_a_second_writer_is_refused_by_the_lock(tmp_path):
    out = tmp_path / "s.jsonl"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(out, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(RunError, match=f"another tuco process \\(pid {holder.pid}\\) is writing"):
            _finished(out, [])
    finally:
        release.set()
        holder.join(30)
    _finished(out, [])  # released with its holder
    assert lock_path(out).exists()


def test_a_killed_holder_never_leaves_a_stale_lock(tmp_path):
    out = tmp_path / "s.jsonl"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(out, ready, release))
    holder.start()
    assert ready.wait(30)
    holder.kill()
    holder.join(30)
    _finished(out, [])


def test_merge_is_ordered_deduplicated_and_idempotent(tmp_path, monkeypatch):
    import tuco.runs.run as run_module

    monkeypatch.setattr(run_module, "init", lambda r, device: None)  # two ranks, one process: no process group
    out = tmp_path / "run"
    with open_run(out, {"x": 1}, ranks=Ranks(0, 2)) as run:
        run.expect(["a", "b", "c"])
        run.write([{"id": "b", "v": 1}, {"id": "a", "v": 1}])
        shard_path(out, 1).write_text(encode_row({"id": "c", "v": 1}) + encode_row({"id": "b", "v": 2}) + '{"id": "tor')
    assert run.n_rows == 3
    assert read_rows(rows_path(out)) == [{"id": "a", "v": 1}, {"id": "b", "v": 2}, {"id": "c", "v": 1}]
    assert not list(out.glob("*.part-*")) and json.loads(manifest_path(out).read_text())["status"] == "finished"
    with open_run(out, {"x": 1}, mode="resume") as run:
        run.expect(["a", "b", "c"])
    assert run.n_rows == 3  # nothing to do: the same file again


def test_unique_ids_are_required_by_name():
    require_unique(["a", "b"])
    with pytest.raises(RunError, match="'a', 'c' appear more than once"):
        require_unique(["a", "b", "a", "c", "c"])


def test_the_plan_depends_on_lengths_and_batch_size_only():
    lengths = [3, 9, 9, 1, 5, 7]
    plan = plan_batches(lengths, 4)
    assert plan == [[1, 2, 5, 4], [0, 3]]
    assert plan_batches(lengths, 4) == plan and sorted(sum(plan, [])) == list(range(6))


def test_check_output_creates_directories(tmp_path):
    from tuco.runs import check_output

    check_output(tmp_path / "a" / "b" / "s.jsonl")
    assert (tmp_path / "a" / "b").is_dir()
    check_output(tmp_path / "x" / "run")
    assert (tmp_path / "x" / "run").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(RunError, match="is a file"):
        check_output(tmp_path / "file")


def test_parquet_keeps_every_field_and_refuses_mixed_types(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    from tuco.runs import parquet_table

    rows = [{"id": "0", "tuco": 0.5}, {"id": "1", "tuco": 0.25, "topic": "bread", "score": 3}]
    table = parquet_table(rows)
    assert table.to_pylist() == [{"id": "0", "tuco": 0.5, "topic": None, "score": None}, {**rows[1]}]
    _finished(tmp_path / "x.parquet", rows, {"a": 1})
    assert pq.read_table(tmp_path / "x.parquet").column("topic").to_pylist() == [None, "bread"]
    with pytest.raises(RunError, match="field 'score' has values of different types \\(int, str\\)"):
        parquet_table([{"id": "0", "score": 5}, {"id": "1", "score": "high"}])


def test_jsonl_and_parquet_of_one_name_keep_separate_manifests(tmp_path):
    assert manifest_path(tmp_path / "s.jsonl") == tmp_path / "s.manifest.json"
    assert manifest_path(tmp_path / "s.parquet") == tmp_path / "s.parquet.manifest.json"
    assert manifest_path(tmp_path / "run") == tmp_path / "run" / "rows.manifest.json"


def test_preflight_refuses_an_existing_or_locked_run_before_any_model(tmp_path):
    from tuco.runs import check_output

    out = tmp_path / "s.jsonl"
    with open_run(out, {"a": 1}) as run:
        run.write([{"id": "0"}])
        with pytest.raises(RunError, match="is writing"):  # the lock is probed before any model loads
            preflight(out, "resume")
        assert check_output(out) == out  # a rank of the run checks its path only
    with pytest.raises(RunError, match="already holds a run \\(1 rows, status finished\\)"):
        preflight(out, "new")
    assert preflight(out, "resume") == out  # resume / overwrite: checked later against the fingerprint
    with pytest.raises(RunError, match="writes a run directory"):
        check_output(tmp_path / "e.jsonl", file_ok=False)
