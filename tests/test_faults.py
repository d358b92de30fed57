"""Fault tests: a run SIGKILLed while it writes the file it resumes from, then resumed with the same command, ends exactly
where an uninterrupted run ends. Each run is a real `factornb` process; the killed one is started through a small wrapper
that lets the n-th write of the named file put half of its bytes on disk and then sends SIGKILL to its own process, so
the kill lands inside the write every time (no timing luck). With a non-atomic write the half-written file would be the
checkpoint or law.json itself, and the resume would fail on it."""
import json, os, signal, subprocess, sys
from pathlib import Path

import torch

# argv: N, PREFIX, then the factornb arguments. The N-th write (torch.save or Path.write_text) to a file whose name starts
# with PREFIX writes half of its bytes, flushes them to disk, and SIGKILLs the process.
KILL_DURING_WRITE = r'''
import io, os, signal, sys, pathlib, torch
n_kill, prefix, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
count = [0]
def half_then_kill(path, data):
    count[0] += 1
    if count[0] < n_kill: return
    with open(path, "wb") as fh: fh.write(data[: len(data) // 2]); fh.flush(); os.fsync(fh.fileno())
    os.kill(os.getpid(), signal.SIGKILL)
_save, _write_text = torch.save, pathlib.Path.write_text
def save(obj, f, *a, **k):
    if isinstance(f, (str, os.PathLike)) and pathlib.Path(f).name.startswith(prefix):
        buf = io.BytesIO(); _save(obj, buf, *a, **k); half_then_kill(f, buf.getvalue())
    return _save(obj, f, *a, **k)
def write_text(self, text, *a, **k):
    if self.name.startswith(prefix): half_then_kill(self, text.encode())
    return _write_text(self, text, *a, **k)
torch.save, pathlib.Path.write_text = save, write_text
from factornb.cli import main
sys.exit(main(argv))
'''

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "IN_TEST": "1"}


def factornb(args, cwd, kill_at: int | None = None, prefix: str = "") -> subprocess.Popen:
    "Start `factornb ARGS` (through the kill wrapper when `kill_at` is given)."
    code = "import sys; from factornb.cli import main; sys.exit(main(sys.argv[1:]))" if kill_at is None else KILL_DURING_WRITE
    pre = [] if kill_at is None else [str(kill_at), prefix]
    return subprocess.Popen([sys.executable, "-c", code, *pre, *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, rc: int = 0) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == rc, (proc.returncode, out[-2000:], err[-2000:])
    return out


def test_train_killed_during_a_checkpoint_write_resumes_exactly(tmp_path):
    args = lambda out: ["train", "--scale", "cpu", "--steps", "40", "--batch-size", "32", "--checkpoint-every", "5", "--threads", "1", "--out", out]
    # 17 scheduled checkpoints (steps 0..10, then every 5 to 40): kill inside the 13th write
    whole, killed = factornb(args("a"), tmp_path), factornb(args("b"), tmp_path, kill_at=13, prefix="step_")
    finish(killed, -signal.SIGKILL)
    b = tmp_path / "b"
    [cut] = b.glob("step_*.tmp"); done = sorted(b.glob("step_*.pt"))
    assert cut.stat().st_size > 0 and not (b / cut.stem).exists()              # killed inside the write: half a file, never renamed
    assert len(done) == 12 and done[-1].name < cut.name and not (b / "final.pt").exists()
    finish(factornb(args("b"), tmp_path))                                       # the same command resumes from the last whole checkpoint
    finish(whole)
    ka, kb = (torch.load(tmp_path / d / "final.pt", weights_only=True) for d in ("a", "b"))
    assert ka["state_dict"].keys() == kb["state_dict"].keys()
    assert all(torch.equal(ka["state_dict"][k], kb["state_dict"][k]) for k in ka["state_dict"])
    ma, mb = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("a", "b"))
    assert ma["rows"] == mb["rows"] and len(ma["rows"]) == 41                  # every step's loss, the same to the last bit
    assert not list(b.glob("*.tmp"))                                           # the resumed run rewrote step 20 whole


def test_grok_law_killed_during_its_json_write_resumes_exactly(tmp_path):
    args = lambda out: ["cores", "grok-law", "--out", out, "--weight-decays", "1", "2", "--ps", "5", "7", "--seeds", "0", "--base-p", "7",
                        "--max-epochs", "40", "--stop-after", "2", "--layers", "1", "--d-model", "16", "--threads", "1", "--quiet"]
    # 3 runs (the (p 7, weight decay 1) run is shared by both sweeps), law.json rewritten after each: kill inside the 2nd write
    whole, killed = factornb(args("a"), tmp_path), factornb(args("b"), tmp_path, kill_at=2, prefix="law.json")
    finish(killed, -signal.SIGKILL)
    b = tmp_path / "b"
    assert len(json.loads((b / "law.json").read_text())["runs"]) == 1        # the first run survived whole; the second's write was cut
    assert (b / "law.json.tmp").stat().st_size > 0 and not (b / "law.png").exists()
    finish(factornb(args("b"), tmp_path))
    finish(whole)
    la, lb = (json.loads((tmp_path / d / "law.json").read_text()) for d in ("a", "b"))
    drop = lambda law: {**law, "runs": [{k: v for k, v in r.items() if k != "seconds"} for r in law["runs"]]}   # wall time differs
    assert len(la["runs"]) == 3 and drop(la) == drop(lb)
    assert not list(b.glob("*.tmp"))
