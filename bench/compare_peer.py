"""Side-by-side speed against the official GANsformer PyTorch port, as ratios (ours / theirs).

The port is the user's own checkout (its `pytorch_version/` folder, or that folder exported
alone); nothing of it is copied into this repository. Each side runs in its own process, the
sides alternate round by round, and each reports its best repetition, with the protocol of
bench/train.py: batch 8, N CPU threads, one G forward without gradients (the port's G in eval
mode, so it uses its fused modulated conv as it does for inference); one training step = the G
step then the D step, non-saturating logistic G loss, logistic D loss, Adam (lr 0.002, betas
0/0.99, eps 1e-8), no regularization, no EMA (the port's G and D in train mode, as its training
loop has them: unfused modulated convs).

    python bench/compare_peer.py --peer ~/gansformer/pytorch_version --peer-python ~/torch-venv/bin/python
    python bench/compare_peer.py --peer ... --peer-python ... --configs stylegan2 --rounds 3

What the port needs from --peer-python: torch (any CPU build that runs the port; tested with
2.13), numpy and easydict-free stdlib. The port's own modules import more than the networks
need (training/misc.py: Pillow, seaborn, termcolor, tqdm; loader.py: click; metrics: scipy); those absent from --peer-python are
replaced by empty stand-in modules in the peer process only, since no code path that the
benchmark runs uses them. The port's CUDA plugins are never built (CPU tensors take the port's
reference paths). Its run_network.setup_config builds the configurations from the same flags as
its command line (`--ganformer-default --dataset ffhq` and `--baseline StyleGAN2`), writing its
training_options.json into a temporary folder.

Prints one JSON object: per configuration and round, both sides' images/s, and the ratios of
the best rounds (ours / theirs; above 1 means we are faster).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# bench/train.py's channels per resolution (its CHANNELS; ours, in our channel_base convention).
DEFAULT_CHANNELS = {256: dict(channel_base=8192, channel_max=128)}

# The port's command-line flags for our bench/train.py configurations.
PEER_FLAGS = {
    "gansformer": ["--ganformer-default", "--dataset", "ffhq"],
    "stylegan2": ["--baseline", "StyleGAN2", "--dataset", "ffhq"],
}

PEER_SCRIPT = r'''
import importlib, importlib.machinery, json, os, statistics, sys, tempfile, time, types
peer, config_flags, res, batch, threads, warmup, reps = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
channels = json.loads(sys.argv[8]) if len(sys.argv) > 8 else {}   # the port's channel_base / channel_max
for name in ("seaborn", "termcolor", "tqdm", "PIL", "PIL.Image", "cv2", "gdown", "requests", "lmdb", "h5py", "click", "scipy", "scipy.linalg"):
    try:
        importlib.import_module(name)
    except ImportError:   # a stand-in: the networks never call it
        mod = types.ModuleType(name)
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None)   # torch's import scans want a spec
        def stand_in(attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            # Decorators (click) become identities; other calls return a no-op decorator.
            return lambda *a, **k: a[0] if a and callable(a[0]) else (lambda f=None, *b, **c: f)
        mod.__getattr__ = stand_in
        sys.modules[name] = mod
        if "." in name:
            setattr(sys.modules[name.split(".")[0]], name.split(".")[1], mod)
sys.path.insert(0, peer); os.chdir(peer)
import torch
torch.set_num_threads(threads)
torch.manual_seed(1)
import run_network, dnnlib
captured = {}
run_network.setup_savefile = lambda *a, **k: None
run_network.launch_processes = lambda config: captured.update(config=config)
tmp = tempfile.mkdtemp()
sys.argv = ["run_network.py", "--train", "--expname", "bench", "--result-dir", tmp, "--data-dir", tmp,
            "--resolution", str(res), "--batch-size", str(batch), "--batch-gpu", str(batch), "--gpus", "0"] + config_flags
os.environ["CUDA_VISIBLE_DEVICES"] = ""
run_network.main()
os.environ["CUDA_VISIBLE_DEVICES"] = ""
cfg = captured["config"]
for key, value in channels.items():   # C(res) = min(channel_base // res, channel_max) in G and D
    cfg["cG"]["synthesis_kwargs"][key] = value
    cfg["cD"][key] = value
common = dict(c_dim=0, img_resolution=res, img_channels=3)
G = dnnlib.util.construct_class_by_name(**cfg["cG"], **common)
D = dnnlib.util.construct_class_by_name(**cfg["cD"], **common)
z_shape = [batch] + [d for d in G.input_shape[1:]]
c = torch.zeros([batch, 0])
opt = dict(lr=0.002, betas=(0.0, 0.99), eps=1e-8)
G_opt, D_opt = torch.optim.Adam(G.parameters(), **opt), torch.optim.Adam(D.parameters(), **opt)
F = torch.nn.functional

def fwd():
    G.eval()
    with torch.no_grad():
        G(torch.randn(z_shape), c)
    G.train()

def step():
    img = G(torch.randn(z_shape), c)[0]
    loss = F.softplus(-D(img, c)).mean()                       # non-saturating logistic G loss
    G_opt.zero_grad(set_to_none=True); loss.backward(); G_opt.step()
    with torch.no_grad():
        img = G(torch.randn(z_shape), c)[0]
    reals = torch.rand([batch, 3, res, res]) * 2 - 1
    loss = F.softplus(D(img, c)).mean() + F.softplus(-D(reals, c)).mean()   # logistic D loss
    D_opt.zero_grad(set_to_none=True); loss.backward(); D_opt.step()

def timed(f):
    for _ in range(warmup):
        f()
    out = []
    for _ in range(reps):
        t = time.perf_counter(); f(); out.append(time.perf_counter() - t)
    return out

count = lambda m: int(sum(p.numel() for p in m.parameters()))
f, s = timed(fwd), timed(step)
print(json.dumps(dict(G_params=count(G), D_params=count(D), G_forward_s=f, train_step_s=s,
                      torch=torch.__version__)))
'''


def run_ours(config, res, batch, threads, warmup, reps, channels):
    cmd = [sys.executable, os.path.join(HERE, "train.py"), "--configs", config, "--res", str(res),
           "--batch", str(batch), "--threads", str(threads), "--warmup", str(warmup), "--reps", str(reps),
           "--no-peak"]
    for key, value in channels.items():
        cmd += ["--" + key.replace("_", "-"), str(value)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True,
                         universal_newlines=True).stdout
    r = json.loads(out[out.index("{"):])["results"][0]   # after any notice lines of the ops
    return dict(G_params=r["G_params"], D_params=r["D_params"], G_forward_s=r["G_forward_s"],
                train_step_s=r["train_step_s"])


def peer_channels(channels):
    """Our channel options in the port's terms: ours C(res) = channel_base // 2^(log2 res - 1),
    the port's channel_base // res, so the port's channel_base is twice ours (same channels)."""
    out = dict(channels)
    if "channel_base" in out:
        out["channel_base"] = 2 * out["channel_base"]
    return out


def run_peer(peer, python, config, res, batch, threads, warmup, reps, channels):
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PEER_SCRIPT)
    try:
        cmd = [python, f.name, os.path.abspath(peer), json.dumps(PEER_FLAGS[config]), str(res), str(batch),
               str(threads), str(warmup), str(reps), json.dumps(peer_channels(channels))]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        sys.exit("error: the peer run failed (exit %d): %s" % (proc.returncode, (proc.stdout + proc.stderr).strip()[-2000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", required=True, help="the port's pytorch_version folder")
    parser.add_argument("--peer-python", required=True, help="a Python with torch")
    parser.add_argument("--configs", default="gansformer,stylegan2")
    parser.add_argument("--res", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two sides")
    parser.add_argument("--channel-base", type=int, default=None,
                        help="ours: C(res) = min(base / 2^(log2 res - 1), max); the port gets twice it "
                             "(its C(res) = base / res). Default: bench/train.py's for --res (256: 8192)")
    parser.add_argument("--channel-max", type=int, default=None, help="default: bench/train.py's for --res (256: 128)")
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.peer, "training", "networks.py")):
        sys.exit("error: --peer %s has no training/networks.py; give the port's pytorch_version folder" % args.peer)
    channels = dict(DEFAULT_CHANNELS.get(args.res, {}))
    channels.update({k: v for k, v in (("channel_base", args.channel_base), ("channel_max", args.channel_max))
                     if v is not None})
    report = dict(benchmark="compare_peer", res=args.res, batch=args.batch, threads=args.threads,
                  channels=channels or "default", configs={})
    for config in args.configs.split(","):
        if config not in PEER_FLAGS:
            sys.exit("error: --configs: unknown %r (known: %s)" % (config, ", ".join(PEER_FLAGS)))
        rounds = []
        for _ in range(args.rounds):
            common = (config, args.res, args.batch, args.threads, args.warmup, args.reps, channels)
            ours = run_ours(*common)
            theirs = run_peer(args.peer, args.peer_python, *common)
            rounds.append(dict(ours=ours, theirs=theirs))
            print(json.dumps(dict(config=config, round=len(rounds), ours=ours, theirs=theirs)),
                  file=sys.stderr, flush=True)

        def best(side, key):
            return min(min(r[side][key]) for r in rounds)
        summary = {}
        for key, name in (("G_forward_s", "G_forward"), ("train_step_s", "train_step")):
            ours_s, theirs_s = best("ours", key), best("theirs", key)
            summary[name] = dict(ours_img_per_s=args.batch / ours_s, theirs_img_per_s=args.batch / theirs_s,
                                 ratio=theirs_s / ours_s)
        summary["params"] = dict(ours_G=rounds[0]["ours"]["G_params"], theirs_G=rounds[0]["theirs"]["G_params"],
                                 ours_D=rounds[0]["ours"]["D_params"], theirs_D=rounds[0]["theirs"]["D_params"])
        report["configs"][config] = dict(summary=summary, rounds=rounds)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
