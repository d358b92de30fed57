"""Tests for factornb.paper1's command line: `--threads` through `models.cpu_threads` (validated, applied, restored)."""
import pytest, torch
import factornb.paper1 as paper1
from factornb.cli import main


@pytest.mark.parametrize("command", [["train"], ["analyze", "some-run"]])
@pytest.mark.parametrize("bad", ["0", "-2"])
def test_bad_threads_is_one_line_and_exit_2(command, bad, tmp_path, capsys):
    assert main(command + ["--threads", bad, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--threads" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()                       # refused before anything ran


def test_threads_apply_during_the_command_and_are_restored(tmp_path, monkeypatch):
    seen = []
    def fake_plan(args):                                         # stands in for the run: record the threads, then stop
        seen.append(torch.get_num_threads()); raise ValueError("stop here")
    monkeypatch.setattr(paper1, "train_plan", fake_plan)
    before = torch.get_num_threads()
    want = 2 if before != 2 else 3
    assert main(["train", "--threads", str(want), "--out", str(tmp_path / "out")]) == 2
    assert seen == [want] and torch.get_num_threads() == before


def test_reproduce_refuses_bad_threads_before_running(tmp_path, monkeypatch):
    monkeypatch.setattr(paper1, "_reproduce", lambda *a: pytest.fail("ran with bad threads"))
    with pytest.raises(ValueError, match="threads"): paper1.reproduce(str(tmp_path), threads=0)
    with pytest.raises((TypeError, ValueError), match="threads"): paper1.reproduce(str(tmp_path), threads=1.5)
    seen = []
    monkeypatch.setattr(paper1, "_reproduce", lambda *a: seen.append(torch.get_num_threads()) or {})
    before = torch.get_num_threads()
    paper1.reproduce(str(tmp_path), threads=2 if before != 2 else 3)
    assert seen == [2 if before != 2 else 3] and torch.get_num_threads() == before
