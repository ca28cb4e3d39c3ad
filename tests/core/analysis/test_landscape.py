"""Landscape analysis on runs whose maps are known functions of z: a mixture's classes are recovered,
a hinge's states are ordered; the fast map generation equals the run's own maps."""

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score

from cryonb.core.analysis.landscape import Landscape, analyze_landscape, mask_from_mean, nearest_center, sample_latents
from cryonb.core.analysis.map_generation import MapGenerator, crop_to_sphere
from cryonb.core.analysis.streamed_pca import StreamedPCA
from cryonb.core.analysis import pca
from cryonb.core.errors import InputError
from cryonb.core.model import FourierDecoder
from cryonb.core.phantoms import assemblies, hinge_states

D = 20
FAST_FIT = {"width": 48, "depth": 2, "epochs": 40, "patience": 10, "lr": 3e-3}


class FunctionRun:
    """A stand-in for a Run whose map for z is ``maps[state_of(z)]``: only the interface analysis uses."""

    def __init__(self, z, maps, state_of, apix=6.0):
        self.z, self.maps, self.state_of = np.asarray(z, np.float32), np.asarray(maps, np.float32), state_of
        self.apix, self.box_size, self.zdim, self.particles = apix, self.maps.shape[-1], self.z.shape[1], None

    def volumes(self, z):
        return self.maps[self.state_of(np.asarray(z, np.float32))]


@pytest.fixture(scope="module")
def mixture():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    truth = rng.integers(0, 3, 600)
    z = centres[truth] + rng.normal(scale=0.7, size=(600, 2))
    maps = torch.stack(list(assemblies(D).values())).numpy()
    state_of = lambda zz: np.argmin(((zz[:, None] - centres[None]) ** 2).sum(-1), 1)  # noqa: E731
    return FunctionRun(z, maps, state_of), state_of(z)


@pytest.fixture(scope="module")
def hinge():
    maps, angles = hinge_states(D, 25)
    rng = np.random.default_rng(2)
    state = rng.integers(0, 25, 500)
    z = np.column_stack([state / 24 * 3 + rng.normal(scale=0.05, size=500), rng.normal(size=(500, 2))])
    state_of = lambda zz: np.clip(np.round(zz[:, 0] / 3 * 24), 0, 24).astype(int)  # noqa: E731
    return FunctionRun(z, maps.numpy(), state_of), angles.numpy()[state_of(z)]


def test_mixture_states_are_its_classes(mixture):
    run, truth = mixture
    result = analyze_landscape(run, 150, k=3, n_components=5, mask_maps=40, regression_kw=FAST_FIT, progress=False)
    assert adjusted_rand_score(truth[result.particle_index], result.labels) > 0.95
    assert adjusted_rand_score(truth, result.particle_states) > 0.95
    assert result.regression.r2_total > 0.9
    # Three distinct maps span two dimensions: no more components than that are reported.
    assert result.coords.shape == (150, 2) and result.particle_coords.shape == (len(run.z), 2)
    assert result.state_counts().sum() == len(run.z)
    # The representative map of each state is a sampled map of that state.
    assert sorted(truth[result.particle_index[result.representative]]) == [0, 1, 2]


def test_hinge_pc1_orders_the_states(hinge):
    run, angle = hinge
    result = analyze_landscape(run, 200, k=5, n_components=4, box=12, regression_kw=FAST_FIT, progress=False)
    assert result.box == 12 and result.apix == pytest.approx(6.0 * D / 12)
    assert abs(spearmanr(result.coords[:, 0], angle[result.particle_index])[0]) > 0.95
    assert abs(spearmanr(result.particle_coords[:, 0], angle)[0]) > 0.95
    # States are numbered along PC1, so along the hinge too.
    state_angle = [angle[result.particle_states == s].mean() for s in range(5)]
    assert abs(spearmanr(state_angle, np.arange(5))[0]) == pytest.approx(1.0)
    traversal = result.pc_maps(0, n=4)
    assert traversal.shape == (4, 12, 12, 12) and not np.allclose(traversal[0], traversal[-1])


def test_save_and_load_round_trip(hinge, tmp_path):
    run, _ = hinge
    result = analyze_landscape(run, 40, k=2, n_components=3, mask_maps=16, regression_kw=FAST_FIT, progress=False)
    result.save(tmp_path / "land")
    back = Landscape.load(tmp_path / "land")
    for name in ("z", "particle_index", "mask", "mean_map", "components", "coords", "labels", "centers", "representative",
                 "particle_coords", "particle_states"):
        np.testing.assert_array_equal(getattr(back, name), getattr(result, name))
    assert back.heldout_r2 == pytest.approx(result.heldout_r2) and back.box == result.box and back.regression is None
    np.testing.assert_allclose(back.pc_maps(0, n=3), result.pc_maps(0, n=3))
    (tmp_path / "land" / "map_pcs.npy").unlink()
    with pytest.raises(InputError, match="map_pcs.npy"):
        Landscape.load(tmp_path / "land")


def test_explained_variance_and_mask(hinge):
    run, _ = hinge
    result = analyze_landscape(run, 60, k=3, n_components=3, regression=False, mask_maps=16, progress=False)
    assert result.particle_coords is None and result.regression is None
    assert np.all(np.diff(result.explained_variance_ratio) <= 1e-9) and result.explained_variance_ratio.sum() <= 1 + 1e-6
    assert result.mask.shape == (D, D, D) and 0 < result.mask.sum() < D**3
    assert result.components.shape == (3, result.mask.sum())
    assert np.allclose(np.linalg.norm(result.components, axis=1), 1, atol=1e-4)


def test_streamed_pca_equals_pca():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 5)) * [9, 6, 4, 2, 1]) @ rng.normal(size=(5, 80)) + 3
    streamed = StreamedPCA(torch.from_numpy(x[:10].mean(0)), rank=12)
    for start in range(0, len(x), 23):
        streamed.update(torch.from_numpy(x[start : start + 23]))
    got, want = streamed.result(4), pca(x, 4)
    np.testing.assert_allclose(got.components, want.components, atol=1e-6)
    np.testing.assert_allclose(got.coords, want.coords, atol=1e-6 * np.abs(want.coords).max())
    np.testing.assert_allclose(got.explained_variance_ratio, want.explained_variance_ratio, rtol=1e-6)
    np.testing.assert_allclose(got.mean, want.mean, atol=1e-9)


@pytest.mark.parametrize("box", [16, 15])
def test_fast_generation_equals_run_volumes(box):
    decoder = FourierDecoder(box, 3, 32, 2).eval()
    volumes = lambda z: (decoder.volumes(torch.as_tensor(np.asarray(z, np.float32))) * 2.5).numpy()  # noqa: E731
    run = SimpleNamespace(model=SimpleNamespace(decoder=decoder), scale=2.5, apix=3.0, box_size=box, zdim=3, volumes=volumes)
    z = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    full = MapGenerator(run)
    assert full.fast
    np.testing.assert_allclose(full(z).numpy(), volumes(z), atol=1e-6)
    for d in (8, 9):
        sketch = MapGenerator(run, d, evaluations_per_chunk=100)
        np.testing.assert_allclose(sketch(z).numpy(), crop_to_sphere(torch.from_numpy(volumes(z)), d).numpy(), atol=1e-6)
    slow = MapGenerator(SimpleNamespace(apix=3.0, box_size=box, zdim=3, volumes=volumes), 8)
    assert not slow.fast and slow(z).shape == (5, 8, 8, 8)


def test_sampling_and_helpers(mixture):
    run, truth = mixture
    assert len(np.unique(sample_latents(run.z, 50, "particles"))) == 50
    assert len(sample_latents(run.z, 10_000)) == len(run.z)
    centres = sample_latents(run.z, 6, "kmeans")
    assert len(np.unique(centres)) == 6
    assert sorted(truth[sample_latents(run.z, 3, "kmeans")]) == [0, 1, 2]  # one particle per blob
    with pytest.raises(InputError, match="not a sampling"):
        sample_latents(run.z, 5, "grid")
    mask, level = mask_from_mean(np.pad(np.ones((2, 2, 2)), 4), dilate=1)
    assert level == pytest.approx(0.5) and mask.sum() == 8 + 6 * 4 - 0  # 2x2x2 core plus its face neighbours
    with pytest.raises(InputError, match="box"):
        MapGenerator(run, box=40)
    same = FunctionRun(run.z, run.maps[:1], lambda zz: np.zeros(len(zz), int))
    with pytest.raises(InputError, match="do not vary inside the mask"):
        analyze_landscape(same, 20, k=2, regression=False, progress=False)
    assert list(nearest_center(np.array([[0.0], [9.0]]), np.array([[1.0], [10.0]]))) == [0, 1]


@pytest.mark.slow
def test_trained_mixture_states_follow_the_simulated_classes():
    """End to end on a model trained on the CPU: simulated three-class mixture, 12 epochs, landscape."""
    from cryonb.core.run import Run
    from cryonb.core.simulate import simulate
    from cryonb.core.training import TrainConfig, Trainer

    sim = simulate("mixture", 600, D=16, apix=12.0, snr=5.0, seed=0, progress=False)
    config = TrainConfig(zdim=2, enc_width=64, dec_width=64, enc_depth=2, dec_depth=2, batch_size=32, lr=2e-3, device="cpu", seed=0)
    run = Run.from_trainer(Trainer(sim.particles, config).fit(12, progress=False))
    result = analyze_landscape(run, 200, k=3, n_components=5, progress=False, regression_kw=FAST_FIT)
    assert adjusted_rand_score(sim.state[result.particle_index], result.labels) > 0.7
    assert adjusted_rand_score(sim.state, result.particle_states) > 0.7


CRYODRGN_RUNS = Path(__file__).resolve().parents[2] / "data" / "cryodrgn_runs"


@pytest.mark.parametrize(("name", "path"), [("vae_gaussian_fourier", "forward"), ("box8_geom_lowf_hartley", "forward"),
                                             ("abinit", "volumes")])
def test_sketches_of_cryodrgn_runs_equal_their_cropped_maps(name, path):
    """A cryoDRGN decoder's sketch goes through its forward (checked once against run.volumes); the
    abinit hypervolume's forward does not give its maps' transform everywhere, so it falls back."""
    from cryonb.core.interop import open_cryodrgn_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the particle files the runs recorded are not on this machine
        run = open_cryodrgn_run(CRYODRGN_RUNS / name, apix=1.0, device="cpu")
    d = run.box_size // 2 if run.box_size >= 8 else 4
    generator = MapGenerator(run, d)
    maps = generator(run.z[:3])
    want = crop_to_sphere(torch.from_numpy(run.volumes(run.z[:3])), d)
    assert generator.path == path and maps.shape == (3, d, d, d)
    np.testing.assert_allclose(maps.numpy(), want.numpy(), atol=1e-5 * float(want.abs().max()))
