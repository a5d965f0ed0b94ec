"""Crash-safe snapshots: network pickles and the training state needed to resume.

A snapshot at `kimg` is two files in the run directory:
  training-state-<kimg:06d>.pkl    optimizer variables, progress counters, RNG state (ours)
  network-snapshot-<kimg:06d>.pkl  the tuple (G, D, Gs), exactly what official loaders read
Both are written under a temporary dot-name and renamed when complete. Names are by whole
kimg (as official loaders expect), so two snapshots less than 1 kimg apart share a name and a
kill between the two renames could pair one snapshot's state with another's networks: so the
network pickle is written first and the state records the MD5 of its bytes (and the image
count). A pair belongs together only when the stamp matches; resume takes the newest such pair
and says which pairs it skipped.
"""

import glob
import hashlib
import os
import pickle
import re
import shutil
import tempfile

from dnnlib.util import UserError, apply_umask_mode, atomic_write_pickle  # Also used as snapshot.atomic_write_pickle.

NETWORK_FMT = "network-snapshot-%06d.pkl"
STATE_FMT = "training-state-%06d.pkl"
_SNAPSHOT_RE = re.compile(r"network-snapshot-(\d+)\.pkl$")
STATE_VERSION = 2          # 2: stamped with network_md5; 1 (unstamped) still resumes.
_READABLE_VERSIONS = (1, 2)


def remove_stale_temporaries(run_dir):
    """Delete temporaries left by a killed writer (never read by anything): every
    `.<name>.tmp-*` file or folder (snapshots, PNG/GIF grids, JSON, ...)."""
    for path in glob.glob(os.path.join(run_dir, ".*.tmp-*")):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError:
            pass


class _HashingFile:
    """A write-only file that also hashes what goes through it."""

    def __init__(self, file):
        self.file, self.md5 = file, hashlib.md5()

    def write(self, data):
        self.md5.update(data)
        return self.file.write(data)


def file_md5(path, chunk=1 << 22):
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            md5.update(block)
    return md5.hexdigest()


def save_snapshot(run_dir, kimg, networks, state, keep=0):
    """Pickle (G, D, Gs) to a temporary file (hashing it), write the state stamped with that
    MD5 into place, then rename the network pickle into place: a network pickle on disk always
    has a state beside it, and a state whose network rename was cut short is recognised by its
    stamp. keep > 0: keep only the newest `keep` snapshots, never more on disk at any moment
    (room is made first; with keep 1 the new one lands before the old one goes). Returns the
    network pickle's path."""
    keep = keep or 0
    if keep > 1:
        prune_snapshots(run_dir, keep - 1)
    network_path = os.path.join(run_dir, NETWORK_FMT % kimg)
    fd, temp_path = tempfile.mkstemp(prefix=".%s.tmp-" % os.path.basename(network_path), dir=run_dir)
    try:
        apply_umask_mode(fd)
        with os.fdopen(fd, "wb") as file:
            hashing = _HashingFile(file)
            pickle.dump(tuple(networks), hashing, protocol=pickle.HIGHEST_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
        atomic_write_pickle(dict(state, version=STATE_VERSION, network_md5=hashing.md5.hexdigest()),
                            os.path.join(run_dir, STATE_FMT % kimg))
        os.replace(temp_path, network_path)
    finally:
        if os.path.exists(temp_path):
            os.remove(temp_path)
    if keep == 1:
        prune_snapshots(run_dir, keep)
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
    if not isinstance(state, dict) or state.get("version") not in _READABLE_VERSIONS:
        raise UserError("%s is not a training state of this version; pass --restart" % path)
    return state


def pair_problem(network_path, state_path):
    """Why a network pickle and the state beside it cannot be resumed together, or None."""
    if not os.path.isfile(state_path):
        return "no %s beside it" % os.path.basename(state_path)
    try:
        state = load_state(state_path)
    except UserError as error:
        return str(error)
    stamp = state.get("network_md5")
    if stamp is not None and stamp != file_md5(network_path):
        return ("its %s belongs to another network pickle (the run was killed while saving)"
                % os.path.basename(state_path))
    return None


def latest_resumable(run_dir, log=None):
    """(network_path, state_path) of the newest snapshot whose state belongs to it, or None;
    `log` (e.g. print) is told about each newer snapshot skipped and why."""
    for _kimg, network_path in reversed(list_snapshots(run_dir)):
        state_path = state_path_for(network_path)
        problem = pair_problem(network_path, state_path)
        if problem is None:
            return network_path, state_path
        if log is not None:
            log("note: skipping %s: %s" % (network_path, problem))
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
