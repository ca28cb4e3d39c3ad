import numpy as np
import pytest

from cryonb.core.errors import InputError
from cryonb.core.io.mrc import read_map
from cryonb.core.particles import load_particles
from cryonb.core.phantoms import render_blobs
from cryonb.core.simulate import allocate, occupancy_probabilities, simulate

BLOBS = np.array([[0.1, -0.05, 0.12, 0.06, 1.0], [-0.15, 0.1, -0.05, 0.045, 0.7], [0.0, 0.2, 0.1, 0.04, 0.5]])


def analytic_projection(rotation, shift, D):
    """Exact projection along z of the rotated blobs V(R^T x), translated by -shift."""
    k = np.arange(D) - D // 2
    image = np.zeros((D, D))
    for x, y, z, sigma, weight in BLOBS:
        cx, cy, _ = rotation @ np.array([x, y, z]) * D
        s = sigma * D
        r2 = (k[None, :] - cx + shift[0]) ** 2 + (k[:, None] - cy + shift[1]) ** 2
        image += weight * np.sqrt(2 * np.pi) * s * np.exp(-r2 / (2 * s * s))
    return image


@pytest.mark.parametrize("shift_sigma", [0.0, 2.0])
def test_images_are_the_exact_projections_translated_by_minus_shift(shift_sigma):
    D = 32
    sim = simulate(render_blobs(BLOBS, D), 12, D=D, snr=None, ctf=False, shift_sigma=shift_sigma, progress=False)
    p = sim.particles
    for image, rotation, shift in zip(p.images[:], p.rotations, p.shifts):
        exact = analytic_projection(rotation, shift, D)
        assert np.abs(image - exact).max() < 0.02 * exact.max()


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    a, b, c = (simulate("hinge", 60, D=24, shift_sigma=1.0, seed=s, progress=False) for s in (3, 3, 4))
    assert a.particles.images[:].tobytes() == b.particles.images[:].tobytes()
    for name in ("rotations", "shifts", "ctf"):
        assert getattr(a.particles, name).tobytes() == getattr(b.particles, name).tobytes()
    np.testing.assert_array_equal(a.state, b.state)
    assert a.particles.images[:].tobytes() != c.particles.images[:].tobytes()


def test_measured_snr_is_the_requested_one():
    noisy = simulate("hinge", 200, D=32, snr=0.1, progress=False).particles.images[:]
    clean = simulate("hinge", 200, D=32, snr=None, progress=False).particles.images[:]
    assert clean.var() / (noisy - clean).var() == pytest.approx(0.1, rel=0.02)


def test_allocation_is_exact():
    np.testing.assert_array_equal(allocate(10, [0.25, 0.25, 0.5]), [3, 2, 5])  # 2.5 and 2.5: first remainder wins
    assert allocate(1001, occupancy_probabilities("cooperative", 50)).sum() == 1001


def test_occupancies_have_their_documented_shapes():
    uniform = occupancy_probabilities("uniform", 50)
    np.testing.assert_allclose(uniform, 1 / 50)
    cooperative = occupancy_probabilities("cooperative", 50)
    assert cooperative[0] == cooperative[-1] == cooperative.max()
    np.testing.assert_allclose(cooperative, cooperative[::-1])
    assert cooperative[:10].sum() + cooperative[-10:].sum() > 0.95
    assert cooperative[20:30].sum() < 1e-3
    noncontiguous = occupancy_probabilities("noncontiguous", 50)
    np.testing.assert_array_equal(np.flatnonzero(noncontiguous), [0, 12, 24, 36, 48])
    np.testing.assert_allclose(noncontiguous[noncontiguous > 0], 0.2)
    with pytest.raises(InputError, match="unknown occupancy"):
        occupancy_probabilities("bimodal", 50)


@pytest.mark.parametrize("occupancy", ["uniform", "cooperative", "noncontiguous"])
def test_hinge_states_are_populated_as_documented(occupancy):
    sim = simulate("hinge", 500, D=16, occupancy=occupancy, snr=None, progress=False)
    np.testing.assert_array_equal(np.bincount(sim.state, minlength=50), allocate(500, occupancy_probabilities(occupancy, 50)))
    np.testing.assert_allclose(sim.reaction_coordinate, 1.5 * sim.state / 49)
    assert len(sim.volumes) == 50 and sim.state_names[7] == "state_07"
    assert 0 < np.mean(np.diff(np.flatnonzero(sim.state == sim.state[0]))) < 500  # shuffled, not sorted


def test_mixture_proportions_are_respected():
    sim = simulate("mixture", 200, D=16, proportions=(1, 3, 6), progress=False)
    assert sim.state_names == ("small", "large", "complex")
    np.testing.assert_array_equal(np.bincount(sim.state), [20, 60, 120])
    with pytest.raises(InputError, match="3 non-negative weights"):
        simulate("mixture", 10, D=16, proportions=(1, 2), progress=False)


def test_ctf_parameters_follow_the_requested_ranges():
    ctf = simulate("hinge", 300, D=16, defocus_range=(12000, 20000), astigmatism=400, progress=False).particles.ctf
    mean = (ctf[:, 0] + ctf[:, 1]) / 2
    assert 12000 <= mean.min() and mean.max() <= 20000 and np.ptp(mean) > 7000
    assert np.all(ctf[:, 0] >= ctf[:, 1]) and np.all(ctf[:, 0] - ctf[:, 1] <= 400)
    assert 0 <= ctf[:, 2].min() and ctf[:, 2].max() < 180
    np.testing.assert_allclose(ctf[:, 3:], np.tile([300, 2.7, 0.1, 0, 0], (300, 1)), rtol=1e-6)


def test_maps_of_the_wrong_shape_are_refused():
    with pytest.raises(InputError, match="cubic"):
        simulate(np.zeros((8, 8, 9)), 5, progress=False)
    with pytest.raises(InputError, match="unknown model"):
        simulate("ribosome", 5, progress=False)


def test_saved_simulation_reads_back(tmp_path):
    sim = simulate({"a": render_blobs(BLOBS, 24), "b": render_blobs(BLOBS[:2], 24)}, 40, D=24, apix=2.5, shift_sigma=2.0, progress=False)
    paths = sim.save(tmp_path / "sim")
    loaded = load_particles(paths["star"])
    assert loaded.apix == 2.5 and len(loaded) == 40
    np.testing.assert_array_equal(loaded.images[:], sim.particles.images[:])
    np.testing.assert_allclose(loaded.rotations, sim.particles.rotations, atol=1e-5)
    np.testing.assert_allclose(loaded.shifts, sim.particles.shifts, atol=1e-5)
    np.testing.assert_allclose(loaded.ctf, sim.particles.ctf, rtol=1e-6)
    volume, apix = read_map(tmp_path / "sim" / "volumes" / "b.mrc")
    assert apix == pytest.approx(2.5)
    np.testing.assert_array_equal(volume, sim.volumes[1].numpy())
    truth = np.load(paths["truth"])
    np.testing.assert_array_equal(truth["state"], sim.state)
    assert list(truth["state_names"]) == ["a", "b"]
    np.testing.assert_array_equal(truth["shifts"], sim.particles.shifts)
