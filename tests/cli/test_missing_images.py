"""Issue 13: a .cs without blob/path (a passthrough file) or a .star without image names: one clear error, not a TypeError."""

import numpy as np
import pytest

from cryonb.cli import main as cli
from cryonb.core.errors import InputError
from cryonb.core.particles import load_particles, require_images


def passthrough_cs(path, n=10, fields=()):
    dtype = [("uid", "<u8"), ("alignments3D/pose", "<f4", (3,)), ("alignments3D/shift", "<f4", (2,)), ("blob/psize_A", "<f4"),
             ("blob/shape", "<u4", (2,)), ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"), ("ctf/df_angle_rad", "<f4"),
             ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"), ("ctf/amp_contrast", "<f4"), *fields]
    array = np.zeros(n, dtype=dtype)
    array["blob/psize_A"], array["blob/shape"], array["ctf/accel_kv"], array["ctf/cs_mm"] = 2.0, 16, 300.0, 2.7
    array["ctf/df1_A"] = array["ctf/df2_A"] = 1e4
    array["ctf/amp_contrast"] = 0.1
    with open(path, "wb") as f:
        np.save(f, array)
    return path


@pytest.mark.parametrize("fields", [(), (("blob/path", "S20"),)])  # no path at all, or a path without blob/idx
def test_train_and_backproject_say_a_cs_has_no_images(tmp_path, capsys, fields):
    cs = passthrough_cs(tmp_path / "J3_passthrough_particles.cs", fields=fields)
    assert cli(["train", str(cs), "--outdir", str(tmp_path / "run"), "--epochs", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "J3_passthrough_particles.cs: has no image locations (it lacks the blob/path and blob/idx fields)" in err
    assert "no images to train on" in err and "Fix: pass the .cs that holds the blob/path and blob/idx fields" in err
    assert "TypeError" not in err and not (tmp_path / "run").exists()
    assert cli(["backproject", str(cs), "-o", str(tmp_path / "map.mrc")]) == 2
    assert "no images to back-project" in capsys.readouterr().err


def test_a_star_without_image_names(tmp_path):
    star = tmp_path / "poses_only.star"
    star.write_text("data_particles\n\nloop_\n_rlnAngleRot #1\n_rlnAngleTilt #2\n_rlnAnglePsi #3\n0 0 0\n10 20 30\n")
    particles = load_particles(star)
    with pytest.raises(InputError, match=r"poses_only\.star: has no rlnImageName column, so there are no images to train on"):
        require_images(particles, "train on")


def test_a_map_is_not_read_as_particles(tmp_path):
    from cryonb.core.io.mrc import write_map, write_stack

    write_map(tmp_path / "reference.mrc", np.zeros((16, 16, 16), np.float32), 2.0)
    with pytest.raises(InputError, match=r"reference\.mrc: is a 3D map of 16x16x16 voxels, not a stack of particle images.*rename it to \.mrcs"):
        load_particles(tmp_path / "reference.mrc")
    write_stack(tmp_path / "cube.mrcs", np.zeros((16, 16, 16), np.float32), 2.0)  # .mrcs: a stack, whatever its shape
    assert len(load_particles(tmp_path / "cube.mrcs")) == 16
    write_stack(tmp_path / "stack.mrc", np.zeros((5, 16, 16), np.float32), 2.0)
    assert len(load_particles(tmp_path / "stack.mrc")) == 5
