"""A NaN or infinite pixel anywhere is refused by every consumer of images, naming the particles."""

import dataclasses
import warnings

import mrcfile
import numpy as np
import pytest
import torch

from cryonb.cli import main as cli
from cryonb.core.errors import InputError
from cryonb.core.finite import check_finite_images
from cryonb.core.particles import ParticleSet, load_particles
from cryonb.core.reconstruct import backproject
from cryonb.core.simulate import simulate
from cryonb.core.training import ImageData


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    """A simulated particles.star + .mrcs of 40 images whose images 3 and 37 hold one NaN / one Inf pixel."""
    outdir = tmp_path_factory.mktemp("nan")
    simulate("hinge", 40, D=16, snr=1.0, progress=False).save(outdir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile notes the NaN in its header stats
        with mrcfile.open(outdir / "particles.mrcs", mode="r+") as mrc:
            mrc.data[3, 5, 7] = np.nan
            mrc.data[37, 0, 0] = np.inf
    return outdir / "particles.star"


def test_backproject_names_the_bad_particles_and_the_file(poisoned):
    particles = load_particles(poisoned)
    with pytest.raises(InputError, match=r"particles 3 \(4@particles.mrcs\), 37 \(38@particles.mrcs\)") as info:
        backproject(particles, batch_size=64, progress=False)
    assert str(poisoned) in str(info.value) and "NaN or infinite" in str(info.value)


def test_backproject_names_rows_of_the_original_file_after_a_subset(poisoned):
    particles = load_particles(poisoned).subset(np.arange(30, 40))
    with pytest.raises(InputError, match=r"particles 37 \(38@particles.mrcs\) "):
        backproject(particles, batch_size=4, progress=False)


def test_backproject_command_exits_non_zero_and_writes_nothing(poisoned, tmp_path, capsys):
    assert cli(["backproject", str(poisoned), "-o", str(tmp_path / "map.mrc")]) == 2
    assert "NaN or infinite pixels" in capsys.readouterr().err
    assert not (tmp_path / "map.mrc").exists()


def test_training_data_checks_every_chunk_not_a_sample(poisoned):
    particles = load_particles(poisoned)
    clean = particles.subset(np.r_[0:3, 4:37])
    ImageData(clean, chunk=8)  # fine
    with pytest.raises(InputError, match=r"particles 37 \(38@particles.mrcs\)"):
        ImageData(particles.subset(np.r_[0:3, 4:40]), chunk=8)  # the bad image is in the last chunk


def test_in_memory_images_and_torch_batches():
    images = np.zeros((12, 8, 8), np.float32)
    images[[2, 5, 6, 7, 8, 9, 11], 1, 1] = np.nan
    particles = ParticleSet(images, rotations=np.tile(np.eye(3, dtype=np.float32), (12, 1, 1)))
    with pytest.raises(InputError, match=r"particles 2, 5, 6, 7, 8 and 2 more in this batch") as info:
        check_finite_images(particles.images[:], particles)
    assert info.value.path is None
    with pytest.raises(InputError, match=r"particles 7, 8, 9, 11 "):
        check_finite_images(torch.as_tensor(particles.images[7:12]), particles, start=7)
    check_finite_images(torch.zeros(3, 8, 8), particles)
    shifted = dataclasses.replace(particles, indices=np.arange(100, 112))
    with pytest.raises(InputError, match=r"particles 102, 105"):
        check_finite_images(shifted.images[:], shifted)


def test_a_non_finite_reconstruction_is_an_error_not_a_map(monkeypatch):
    from cryonb.core import reconstruct

    particles = ParticleSet(np.ones((4, 8, 8), np.float32), rotations=np.tile(np.eye(3, dtype=np.float32), (4, 1, 1)), apix=1.0)
    monkeypatch.setattr(reconstruct.FourierAccumulator, "volume", lambda self, maps, wiener: torch.full((8, 8, 8), float("nan")))
    with pytest.raises(InputError, match="reconstruction has NaN or infinite voxels"):
        backproject(particles, ctf=False, progress=False)
