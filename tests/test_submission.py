"""dnnlib.submission: run directories, submit_run, RunContext."""

import multiprocessing
import os
import pickle
import sys

import pytest

import dnnlib
from dnnlib import submission


def _create_dirs(root, desc, start_event, count, queue):
    start_event.wait()
    queue.put([submission.create_run_dir(root, desc)[0] for _ in range(count)])


def test_concurrent_processes_get_distinct_run_ids(tmp_path):
    root = str(tmp_path / "results")
    os.makedirs(os.path.join(root, "00007-old"))
    os.makedirs(os.path.join(root, "notes"))  # no leading number: ignored
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold TF threads
    start, queue = ctx.Event(), ctx.Queue()
    # Different descriptions too: distinct names alone must not allow a shared number.
    procs = [ctx.Process(target=_create_dirs, args=(root, f"desc{i}", start, 5, queue)) for i in range(3)]
    for p in procs:
        p.start()
    start.set()
    ids = sum((queue.get(timeout=60) for _ in procs), [])
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(ids) == list(range(8, 8 + 15))
    numbered = [name for name in os.listdir(root) if name[:1].isdigit()]
    assert len({name[:5] for name in numbered}) == len(numbered) == 16


def run_func_ok(submit_config, value):
    print("running with", value)
    print("to stderr", file=sys.stderr)
    assert dnnlib.make_run_dir_path("x.txt") == os.path.join(submit_config.run_dir, "x.txt")
    ctx = dnnlib.RunContext.get()
    ctx.update(loss_value=1.0, cur_epoch=1, max_epoch=2)
    return value * 2


def run_func_no_config(value):
    print("plain", value)
    return value + 1


def run_func_fails(value):
    print("about to fail")
    raise RuntimeError(f"boom {value}")


def test_submit_run_layout_and_result(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "mod.py").write_text("x = 1\n")
    (src / "__pycache__" / "mod.pyc").write_text("")
    cfg = dnnlib.SubmitConfig(run_dir_root=str(tmp_path / "results"), run_desc="my-run",
                              run_dir_extra_files=[str(src), (str(src / "mod.py"), "extra/copy.py")])
    assert dnnlib.submit_run(cfg, __name__ + ".run_func_ok", value=21) == 42
    run_dir = tmp_path / "results" / "00000-my-run"
    assert (run_dir / "src" / "mod.py").read_text() == "x = 1\n" and (run_dir / "extra" / "copy.py").exists()
    assert not (run_dir / "src" / "__pycache__").exists()  # run_dir_ignore pattern
    names = set(os.listdir(run_dir))
    assert {"log.txt", "run.txt", "submit_config.pkl", "submit_config.txt", "_finished.txt"} <= names
    log = (run_dir / "log.txt").read_text()
    assert "running with 21" in log and "to stderr" in log
    with open(run_dir / "submit_config.pkl", "rb") as f:
        stored = pickle.load(f)
    assert stored.run_dir == str(run_dir) and stored.run_func_kwargs == {"value": 21}
    run_txt = (run_dir / "run.txt").read_text()
    assert "start_time:" in run_txt and "stop_time:" in run_txt and "status: finished" in run_txt
    assert dnnlib.submit_config is None and dnnlib.make_run_dir_path("a") == os.path.join(os.getcwd(), "a")
    # The next run takes the next number.
    assert dnnlib.submit_run(cfg, __name__ + ".run_func_no_config", value=1) == 2
    assert os.path.isdir(tmp_path / "results" / "00001-my-run")


def test_resume_appends_to_log(tmp_path):
    cfg = dnnlib.SubmitConfig(run_dir_root=str(tmp_path), run_desc="res")
    dnnlib.submit_run(cfg, __name__ + ".run_func_no_config", value=1)
    run_dir = str(tmp_path / "00000-res")
    resume = dnnlib.SubmitConfig(run_dir_root=str(tmp_path), run_dir=run_dir)
    dnnlib.submit_run(resume, __name__ + ".run_func_no_config", value=5)
    log = open(os.path.join(run_dir, "log.txt")).read()
    assert log.index("plain 1") < log.index("plain 5")
    assert [n for n in os.listdir(tmp_path) if not n.startswith(".")] == ["00000-res"]  # no new run dir
    assert open(os.path.join(run_dir, "run.txt")).read().count("start_time:") == 2


def test_exception_is_logged_and_reraised(tmp_path, capsys):
    cfg = dnnlib.SubmitConfig(run_dir_root=str(tmp_path), run_desc="bad")
    original_stdout = sys.stdout
    with pytest.raises(RuntimeError, match="boom 3"):
        dnnlib.submit_run(cfg, __name__ + ".run_func_fails", value=3)
    assert sys.stdout is original_stdout
    run_dir = tmp_path / "00000-bad"
    log = (run_dir / "log.txt").read_text()
    assert "about to fail" in log and "Traceback" in log and "RuntimeError: boom 3" in log
    assert not (run_dir / "_finished.txt").exists()
    assert "status: failed" in (run_dir / "run.txt").read_text()


def test_run_context_stop_requests(tmp_path):
    cfg = dnnlib.SubmitConfig(run_dir=str(tmp_path))
    with dnnlib.RunContext(cfg) as ctx:
        assert dnnlib.RunContext.get() is ctx
        assert not ctx.should_stop()
        (tmp_path / "abort.txt").write_text("")
        assert ctx.should_stop()
        ctx.update(loss_value=0.5, cur_epoch=3, max_epoch=10)
        assert ctx.progress.cur_epoch == 3
        assert 0 <= ctx.get_time_since_last_update() <= ctx.get_time_since_start()
    assert dnnlib.RunContext._current is None
    ctx2 = dnnlib.RunContext(dnnlib.SubmitConfig(run_dir=str(tmp_path / "other")))
    assert not ctx2.should_stop()
    ctx2.request_stop()
    assert ctx2.should_stop()
    ctx2.close()
