"""Crash-safe snapshots: network pickles and the training state needed to resume.

A snapshot at `kimg` is two files in the run directory:
  training-state-<kimg:06d>.pkl    optimizer variables, progress counters, RNG state (ours)
  network-snapshot-<kimg:06d>.pkl  the tuple (G, D, Gs), exactly what official loaders read
Both are written under a temporary dot-name and renamed when complete, state first, so a
network snapshot on disk always has its state beside it, whenever the process is killed.
"""

import glob
import os
import pickle
import re

from dnnlib.util import UserError, atomic_write_pickle  # Also used as snapshot.atomic_write_pickle.

NETWORK_FMT = "network-snapshot-%06d.pkl"
STATE_FMT = "training-state-%06d.pkl"
_SNAPSHOT_RE = re.compile(r"network-snapshot-(\d+)\.pkl$")
STATE_VERSION = 1


def remove_stale_temporaries(run_dir):
    """Delete temporaries left by a killed writer (never read by anything)."""
    for path in glob.glob(os.path.join(run_dir, ".*.tmp-*")):
        try:
            os.remove(path)
        except OSError:
            pass


def save_snapshot(run_dir, kimg, networks, state):
    """Write the state, then the (G, D, Gs) pickle; returns the network pickle's path."""
    atomic_write_pickle(dict(state, version=STATE_VERSION), os.path.join(run_dir, STATE_FMT % kimg))
    network_path = os.path.join(run_dir, NETWORK_FMT % kimg)
    atomic_write_pickle(tuple(networks), network_path)
    return network_path


def list_snapshots(run_dir):
    """[(kimg, network_path)] sorted by kimg, newest last."""
    found = []
    for path in glob.glob(os.path.join(run_dir, "network-snapshot-*.pkl")):
        match = _SNAPSHOT_RE.search(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def state_path_for(network_path):
    kimg = int(_SNAPSHOT_RE.search(os.path.basename(network_path)).group(1))
    return os.path.join(os.path.dirname(network_path), STATE_FMT % kimg)


def load_state(path):
    """The training state dict from a state file; UserError naming the file if unreadable."""
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError) as err:
        raise UserError("cannot read training state %s (%s); delete it to resume from an older "
                        "snapshot, or pass --restart" % (path, err))
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise UserError("%s is not a training state of this version; pass --restart" % path)
    return state


def latest_resumable(run_dir):
    """(network_path, state_path) of the newest snapshot with a state beside it, or None."""
    for _kimg, network_path in reversed(list_snapshots(run_dir)):
        state_path = state_path_for(network_path)
        if os.path.isfile(state_path):
            return network_path, state_path
    return None


def prune_snapshots(run_dir, keep):
    """Keep the newest `keep` snapshots (network + state); keep <= 0 keeps all."""
    if keep is None or keep <= 0:
        return
    for _kimg, network_path in list_snapshots(run_dir)[:-keep]:
        for path in (state_path_for(network_path), network_path):
            if os.path.exists(path):
                os.remove(path)


def find_latest_run(result_dir, desc):
    """The newest `<result_dir>/<NNNNN>-<desc>` run directory that holds a resumable
    snapshot, or None."""
    if not os.path.isdir(result_dir):
        return None
    runs = []
    for name in os.listdir(result_dir):
        match = re.match(r"^(\d+)-(.+)$", name)
        path = os.path.join(result_dir, name)
        if match and match.group(2) == desc and os.path.isdir(path):
            runs.append((int(match.group(1)), path))
    for _num, path in sorted(runs, reverse=True):
        if latest_resumable(path) is not None:
            return path
    return None
