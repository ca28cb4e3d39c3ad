import numpy as np
import pytest

from cryonb.core.errors import InputError
from cryonb.core.io.mrc import read_map
from cryonb.core.run import Run
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    particles = simulate("hinge", 64, D=16, apix=8.0, snr=1.0, seed=3, progress=False).particles
    run_dir = tmp_path_factory.mktemp("run")
    trainer = Trainer(particles, TrainConfig(**TINY), run_dir=run_dir).fit(1, progress=False)
    return trainer, run_dir


def test_open_matches_the_trainer(trained):
    trainer, run_dir = trained
    from_disk = Run.open(run_dir, trainer.particles, device="cpu")  # no z.npy: computed from the particles
    in_memory = Run.from_trainer(trainer)
    np.testing.assert_allclose(from_disk.z, in_memory.z, rtol=1e-5, atol=1e-6)
    z = in_memory.z[:3]
    np.testing.assert_allclose(from_disk.volumes(z), trainer.volumes(z), rtol=1e-4, atol=1e-6)
    assert from_disk.box_size == 16 and from_disk.zdim == 2 and from_disk.apix == pytest.approx(8.0)


def test_batched_volumes_equal_one_at_a_time(trained):
    run = Run.from_trainer(trained[0])
    z = run.z[:4]
    together = run.volumes(z)
    alone = np.stack([run.volumes(zi)[0] for zi in z])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)
    assert together.shape == (4, 16, 16, 16) and not np.allclose(together[0], together[1])


def test_write_volumes_with_pixel_size(trained, tmp_path):
    run = Run.from_trainer(trained[0])
    paths = run.write_volumes(run.z[:2], tmp_path, prefix="state")
    assert [p.name for p in paths] == ["state_000.mrc", "state_001.mrc"]
    volume, apix = read_map(paths[1])
    assert apix == pytest.approx(8.0) and volume.shape == (16, 16, 16)
    np.testing.assert_allclose(volume, run.volumes(run.z[1])[0], rtol=1e-5, atol=1e-6)


def test_bad_latents_and_incomplete_runs(trained, tmp_path):
    run = Run.from_trainer(trained[0])
    with pytest.raises(InputError, match=r"shape \(B, 2\) for this run, got \(3, 5\)"):
        run.volumes(np.zeros((3, 5)))
    with pytest.raises(InputError, match="NaN"):
        run.volumes([np.nan, 0.0])
    with pytest.raises(InputError, match="config.json is missing"):
        Run.open(tmp_path)
    Trainer(trained[0].particles, TrainConfig(**TINY), run_dir=tmp_path / "fresh")
    with pytest.raises(InputError, match="no checkpoint yet"):
        Run.open(tmp_path / "fresh")
