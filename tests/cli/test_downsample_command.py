import argparse

import numpy as np
import pytest
import torch

from cryonb.cli import downsample as command
from cryonb.cli import main
from cryonb.core.errors import InputError
from cryonb.core.fourier import fourier_crop
from cryonb.core.particles import load_particles, write_star
from cryonb.core.simulate import simulate


def run(*argv):
    parser = argparse.ArgumentParser()
    command.add_args(parser)
    return command.main(parser.parse_args([str(a) for a in argv]))


@pytest.fixture(scope="module")
def star(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    particles = simulate("hinge", 50, D=32, apix=2.0, snr=1.0, seed=3, progress=False).particles
    particles.shifts = np.random.default_rng(0).normal(0, 2, (50, 2)).astype(np.float32)
    write_star(particles, folder / "particles.star")  # writes particles.mrcs beside it
    return folder / "particles.star"


def test_downsampled_images_are_the_fourier_crop_and_the_star_loads_back(star, tmp_path, capsys):
    run(star, "--box", 16, "--out", tmp_path / "small" / "p16.mrcs", "--chunk", 7, "--no-progress")
    assert "50 images, box 16, 4 Å/pixel" in capsys.readouterr().out
    before = load_particles(star)
    after = load_particles(tmp_path / "small" / "p16.star")
    assert len(after) == 50 and after.box_size == 16 and after.apix == pytest.approx(4.0)
    want = fourier_crop(torch.as_tensor(before.images[:]), 16).numpy()
    np.testing.assert_allclose(after.images[:], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after.shifts * after.apix, before.shifts * before.apix, rtol=1e-5, atol=1e-5)  # Å unchanged
    np.testing.assert_allclose(after.rotations, before.rotations, atol=1e-5)
    np.testing.assert_allclose(after.ctf, before.ctf, rtol=1e-5)
    files, rows = after.images.locations()
    assert {f.resolve() for f in map(type(star), files)} == {(tmp_path / "small" / "p16.mrcs").resolve()}
    assert list(rows) == list(range(50))


def test_downsample_a_bare_stack_through_the_console_script(star, tmp_path):
    stack = star.with_suffix(".mrcs")
    assert main(["downsample", str(stack), "-D", "8", "-o", str(tmp_path / "p8.mrcs"), "--star", str(tmp_path / "x.star"),
                 "--no-progress"]) == 0
    after = load_particles(tmp_path / "x.star")
    assert after.box_size == 8 and after.apix == pytest.approx(8.0)
    want = fourier_crop(torch.as_tensor(load_particles(stack).images[:]), 8).numpy()
    np.testing.assert_allclose(after.images[:], want, rtol=1e-5, atol=1e-6)


def test_bad_boxes_and_overwriting_the_input_are_refused(star, tmp_path):
    with pytest.raises(InputError, match="must be even and at most"):
        run(star, "--box", 64, "--out", tmp_path / "big.mrcs", "--no-progress")
    with pytest.raises(InputError, match="must be even"):
        run(star, "--box", 15, "--out", tmp_path / "odd.mrcs", "--no-progress")
    with pytest.raises(InputError, match="is one of the input stacks"):
        run(star, "--box", 16, "--out", star.with_suffix(".mrcs"), "--no-progress")
    assert not (tmp_path / "big.mrcs").exists()
