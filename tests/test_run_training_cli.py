"""run_training.py's command line: help, presets, overrides, --dry-run and one-line errors."""

import json
import os

import pytest

import run_training

ISSUE_FLAGS = ["--data-dir", "--dataset", "--resolution", "--ratio", "--mirror-augment", "--gpus", "--batch-size",
               "--batch-gpu", "--total-kimg", "--gamma", "--g-lr", "--d-lr", "--g-loss", "--d-loss", "--d-reg",
               "--pl-weight", "--metrics", "--result-dir", "--snapshot-ticks", "--keep-snapshots", "--resume",
               "--restart", "--pretrained-pkl", "--seed", "--ganformer-default", "--gansformer", "--baseline",
               "--dry-run"]


def _dry(tmp_path, capsys, *argv):
    code = run_training.main(["--dry-run", "--result-dir", str(tmp_path), "--data-dir", str(tmp_path / "data"),
                              *argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    saved = [f for f in os.listdir(tmp_path) if f.endswith("-dry-run.json")]
    assert len(saved) == 1
    with open(os.path.join(tmp_path, saved[0])) as f:
        return json.load(f), out.out


def _error(capsys, *argv):
    code = run_training.main(list(argv))
    out = capsys.readouterr()
    lines = [l for l in out.err.splitlines() if l.strip()]
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    return lines[0]


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        run_training.main(["-h"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ISSUE_FLAGS + ["--components-num", "--kmeans", "--integration", "--d-transformer", "--channel-base"]:
        assert flag in text, flag


def test_every_model_option_is_described():
    """Each model flag's help is the comment beside its default in training/networks.py."""
    from training import options
    specs = {a.option_strings[0]: a.help for a in run_training.build_parser()._actions if a.option_strings}
    g_names, d_names = options.model_flag_names()
    flags = ["--" + n.replace("_", "-") for n in g_names] + ["--d-" + n.replace("_", "-") for n in d_names]
    undescribed = [f for f in flags if "model option (default" in specs[f]]
    assert not undescribed
    assert specs["--mapping-shared-dim"].startswith("G: >0: map the latents jointly")
    assert specs["--d-mbstd-group-size"].startswith("D: Minibatch-stddev group")
    assert specs["--d-pos-type"].startswith("D: sinus | linear")          # shared option, G's words


def test_no_arguments_is_the_main_job(tmp_path, capsys):
    opts, out = _dry(tmp_path, capsys)
    assert opts["main_job"] and opts["dataset"] == "scenes" and opts["preset_name"] == "gansformer"
    assert opts["G_args"]["transformer"] and opts["G_args"]["kmeans"]
    assert opts["resolution"] == 32 and opts["run_desc"] == "gansformer-scenes-32"
    assert "Dry run" in out and not os.path.exists(tmp_path / "data")   # nothing made or trained


def test_presets_and_typed_overrides(tmp_path, capsys):
    opts, _ = _dry(tmp_path / "a", capsys, "--baseline", "StyleGAN2", "--dataset", "ffhq", "--gamma", "5")
    assert opts["preset_name"] == "StyleGAN2" and not opts["G_args"]["transformer"]
    assert opts["gamma"] == 5 and opts["batch_size"] == 32 and not opts["main_job"]
    opts, _ = _dry(tmp_path / "b", capsys, "--ganformer-default", "--dataset", "clevr", "--components-num", "4")
    assert opts["gamma"] == 40 and opts["G_args"]["components_num"] == 4      # typed k wins, gamma per dataset
    assert opts["G_args"]["latent_size"] == 128 and opts["G_args"]["style"] is False
    assert "componentsnum4" in opts["run_desc"]
    opts, _ = _dry(tmp_path / "c", capsys, "--gansformer", "duplex", "--d-transformer", "true", "--dataset", "x")
    assert opts["G_args"]["img2ltnt"] and opts["D_args"]["transformer"] is True


@pytest.mark.parametrize("argv, fragment", [
    (["--no-such-option"], "unrecognized"),
    (["--baseline", "GAN", "--gansformer", "simplex"], "contradict"),
    (["--baseline", "BigGAN"], "invalid choice"),
    (["--resume", "/nonexistent/run", "--restart"], "contradict"),
    (["--batch-size", "10", "--batch-gpu", "4"], "multiple"),
    (["--resolution", "48"], "power of two"),
    (["--g-loss", "softplus"], "--g-loss"),
    (["--integration", "concat"], "integration"),
    (["--components-num", "5", "--latent-size", "128"], "divisible"),
    (["--gpus", "0,0"], "--gpus"),
    (["--pretrained-pkl", "/nonexistent.pkl"], "no such file"),
    (["--dataset", "nothing-here", "--data-dir", "/nonexistent"], "not found"),
])
def test_bad_options_give_one_line(capsys, tmp_path, argv, fragment):
    line = _error(capsys, "--result-dir", str(tmp_path), *argv)
    assert fragment in line
