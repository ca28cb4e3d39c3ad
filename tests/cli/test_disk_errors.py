"""Issue 13: a full disk or a folder that may not be written is said so, with the fix (simulated, never a real full disk)."""

import errno
import io
import os
import tempfile

import pytest

from cryonb.cli import main as cli
from cryonb.core.errors import InputError
from cryonb.core.io import atomic
from cryonb.core.simulate import simulate
from cryonb.core.checkpoints import find_checkpoint


@pytest.fixture(scope="module")
def star(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    return simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=1, progress=False).save(folder)["star"]


SMALL = ["--zdim", "2", "--width", "32", "--depth", "2", "--batch-size", "16", "--device", "cpu"]


class FullDisk(io.FileIO):
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fill_disk_after(monkeypatch, checkpoints: int):
    """Binary writes of checkpoints fail with ENOSPC after the first ``checkpoints`` ones, as on a full disk."""
    real_open, written = open, []

    def opener(path, mode="r", *args, **kwargs):
        if mode == "wb" and ".step_" in os.fspath(path):
            written.append(path)
            if len(written) > checkpoints:
                return FullDisk(path, "w")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", opener, raising=False)


def test_train_on_a_full_disk_says_so_and_continues_once_there_is_space(star, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    fill_disk_after(monkeypatch, 1)
    assert cli(["train", str(star), "--outdir", str(run), "--epochs", "2", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "step_00000012.pt: could not be written: no space left on the disk (" in err and "MiB free in" in err
    assert "unexpected pos" not in err and "Fix: free some space" in err
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")] == []  # no half file left
    assert find_checkpoint(run)[1]["epoch"] == 1  # the last complete checkpoint is intact
    monkeypatch.undo()
    assert cli(["train", str(star), "--outdir", str(run)]) == 0
    assert find_checkpoint(run)[1]["epoch"] == 2 and (run / "z.npy").exists()


def test_backproject_on_a_full_disk_or_a_folder_it_may_not_write(star, tmp_path, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # some file systems report a full disk only here
    assert cli(["backproject", str(star), "-o", str(tmp_path / "map.mrc"), "--no-half-maps"]) == 2
    err = capsys.readouterr().err
    assert "map.mrc: could not be written: no space left on the disk" in err and "Fix: free some space" in err
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert cli(["backproject", str(star), "-o", str(tmp_path / "map.mrc"), "--no-half-maps"]) == 2
    err = capsys.readouterr().err
    assert "map.mrc: could not be written: permission denied" in err and "Fix: write to a folder you may write to" in err


def test_other_os_errors_are_named_by_the_cli(star, tmp_path, capsys, monkeypatch):
    from pathlib import Path

    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    assert cli(["train", str(star), "--outdir", str(tmp_path / "run"), "--epochs", "1", *SMALL]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'run'}: permission denied. Fix: check the permissions" in err


def test_write_error_ignores_other_failures(tmp_path):
    assert atomic.write_error(tmp_path / "x", RuntimeError("boom")) is None
    assert atomic.write_error(tmp_path / "x", OSError(errno.EIO, "io")) is None
    assert isinstance(atomic.write_error(tmp_path / "x", OSError(errno.EROFS, "ro")), InputError)
