"""dnnlib.util: Logger, time formatting, objects by name."""

import os
import pickle
import sys

import pytest

from dnnlib import util


def test_logger_tees_stdout_and_stderr(tmp_path, capsys):
    log = tmp_path / "log.txt"
    original_out, original_err = sys.stdout, sys.stderr
    logger = util.Logger(str(log))
    print("hello out")
    print("hello err", file=sys.stderr)
    logger.close()
    assert sys.stdout is original_out and sys.stderr is original_err
    print("after close")
    captured = capsys.readouterr()
    assert captured.out == "hello out\nafter close\n"
    assert captured.err == "hello err\n"
    assert log.read_text() == "hello out\nhello err\n"


def test_logger_append_mode(tmp_path, capsys):
    log = tmp_path / "log.txt"
    with util.Logger(str(log)):
        print("first")
    with util.Logger(str(log), file_mode="a"):
        print("second")
    with util.Logger(str(log), file_mode="a", should_flush=False) as logger:
        print("third")
        logger.write_file_only("file only\n")
    assert log.read_text() == "first\nsecond\nthird\nfile only\n"
    assert "file only" not in capsys.readouterr().out


def _expected_format(seconds, brief):
    # Independent computation: peel off units with divmod.
    total = int(round(seconds))
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if total < 60:
        return "%ds" % secs
    if total < 3600:
        return "%dm %02ds" % (minutes, secs)
    if total < 86400:
        return "%dh %02dm" % (hours, minutes) if brief else "%dh %02dm %02ds" % (hours, minutes, secs)
    return "%dd %02dh" % (days, hours) if brief else "%dd %02dh %02dm" % (days, hours, minutes)


@pytest.mark.parametrize("seconds", [0, 0.4, 12, 59.4, 60, 185, 3599, 3600, 7384, 86399, 86400,
                                     93784, 2 * 86400 + 23 * 3600 + 59 * 60 + 59, 40 * 86400 + 5])
def test_format_time(seconds):
    assert util.format_time(seconds) == _expected_format(seconds, brief=False)
    assert util.format_time_brief(seconds) == _expected_format(seconds, brief=True)


def test_format_time_day_rollover():
    # One day plus 25 hours must read 2 days 01h, not 1 day 25h (the GANsformer bug).
    assert util.format_time(86400 + 25 * 3600) == "2d 01h 00m"


def _sample_function(a, b=2):
    return a * 10 + b


def test_get_obj_and_call_by_name():
    assert util.get_obj_by_name("os.path.join") is os.path.join
    module, local = util.get_module_from_obj_name("os.path.join")
    assert module is os.path and local == "join"
    name = __name__ + "._sample_function"
    assert util.call_func_by_name(3, func_name=name, b=4) == 34
    import fractions
    assert util.construct_class_by_name(3, 4, class_name="fractions.Fraction") == fractions.Fraction(3, 4)
    with pytest.raises(ValueError, match="no_such_module_xyz"):
        util.get_obj_by_name("no_such_module_xyz.func")
    with pytest.raises(ValueError, match="func_name"):
        util.call_func_by_name(func_name="os.sep")  # a string is not callable


def test_top_level_function_name():
    assert util.is_top_level_function(_sample_function)
    name = util.get_top_level_function_name(_sample_function)
    assert util.get_obj_by_name(name) is _sample_function
    assert not util.is_top_level_function(lambda x: x)
    with pytest.raises(ValueError):
        util.get_top_level_function_name(lambda x: x)


def test_import_errors_inside_an_existing_module_pass_through(tmp_path, monkeypatch):
    (tmp_path / "broken_mod_for_test.py").write_text("import missing_dependency_for_test\ndef f():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="missing_dependency_for_test"):
        util.get_obj_by_name("broken_mod_for_test.f")


def test_easydict_and_user_error():
    d = util.EasyDict(a=1)
    d.b = 2
    assert d == {"a": 1, "b": 2} and d.a == 1
    with pytest.raises(AttributeError):
        d.missing
    assert issubclass(util.UserError, Exception)


def test_run_cli_and_argument_parser(capsys):
    """UserErrors (a bad option included) become one stderr line and exit code 1; a normal
    return passes through, None as 0; other exceptions are not swallowed."""
    parser = util.ArgumentParser(prog="tool.py")
    parser.add_argument("--n", type=int, default=1)

    def work(argv):
        n = parser.parse_args(argv).n
        if n < 0:
            raise util.UserError("--n %d: must be >= 0" % n)
        return n or None

    assert util.run_cli(work, ["--n", "3"]) == 3 and util.run_cli(work, []) == 1 and util.run_cli(work, ["--n", "0"]) == 0
    capsys.readouterr()
    assert util.run_cli(work, ["--n", "-2"], prefix="tool.py: error") == 1
    assert capsys.readouterr().err == "tool.py: error: --n -2: must be >= 0\n"
    assert util.run_cli(work, ["--bogus"]) == 1
    assert capsys.readouterr().err == "error: tool.py: unrecognized arguments: --bogus (see --help)\n"
    with pytest.raises(ZeroDivisionError):
        util.run_cli(lambda: 1 / 0)


def test_atomic_write_replaces_whole_files_only(tmp_path):
    path = str(tmp_path / "sub" / "a.txt")                      # Missing directory is created.
    assert util.atomic_write(path, lambda f: f.write("one"), mode="w") == path

    def interrupted(f):
        f.write("half")
        raise RuntimeError("stop")
    with pytest.raises(RuntimeError):
        util.atomic_write(path, interrupted, mode="w")
    assert open(path).read() == "one" and os.listdir(str(tmp_path / "sub")) == ["a.txt"]
    util.atomic_write_pickle({"x": 1}, path)
    assert pickle.load(open(path, "rb")) == {"x": 1}
