import os

import pytest

from cryonb.core.io.atomic import atomic_path, atomic_write


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]  # temporary file removed
    with atomic_write(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_path_gives_a_sibling_and_normal_permissions(tmp_path):
    target = tmp_path / "data.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert target.stat().st_mode & 0o644 == 0o644


def test_atomic_write_refuses_read_modes(tmp_path):
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "x", "rb"):
            pass
