"""The benchmark suite's data generator, checked against known facts and cryonb as an oracle.

cryonb's loader, Fourier-slice projector and CTF reproduce the suite's images from its .star
and true maps alone: that proves the pose, shift and CTF conventions of the written files.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.suite import atoms, imaging, sets  # noqa: E402
from cryonb.core.ctf import compute_ctf, ctf_images  # noqa: E402
from cryonb.core.fourier import fft2_center, fft3_center, frequency_grid, ifft2_center  # noqa: E402
from cryonb.core.io.mrc import open_stack  # noqa: E402
from cryonb.core.particles import load_particles  # noqa: E402
from cryonb.core.projection import extract_slices, shift_images_ft  # noqa: E402

BOX, N = 32, 200
needs_adk = pytest.mark.skipif(atoms.mdanalysistests_file("adk_dims.dcd") is None, reason="mdanalysistests is not installed")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a small busy machine two threads' hand-offs dominate these small ops."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def images(path) -> np.ndarray:
    with open_stack(path) as stack:
        return np.array(stack.data)


@pytest.fixture(scope="module")
def adk_sets(tmp_path_factory):
    """The adk set without and with noise (same seed: the same clean images)."""
    if atoms.mdanalysistests_file("adk_dims.dcd") is None:
        pytest.skip("mdanalysistests is not installed")
    root = tmp_path_factory.mktemp("adk")
    clean = sets.adk(root / "clean", n=N, box=BOX, snr=None, seed=0, progress=False)
    noisy = sets.adk(root / "noisy", n=N, box=BOX, snr=0.1, seed=0, progress=False)
    return clean, noisy


@pytest.fixture(scope="module")
def assembly_set(tmp_path_factory, real_data):
    return sets.assembly(tmp_path_factory.mktemp("assembly"), n=300, box=BOX, snr=0.1, seed=0, data_dir=real_data, progress=False)


# -- readers --------------------------------------------------------------------------------


def _record(payload: bytes) -> bytes:
    return struct.pack("<i", len(payload)) + payload + struct.pack("<i", len(payload))


def test_dcd_reader_on_a_written_file(tmp_path):
    """A hand-made CHARMM DCD with unit-cell records reads back exactly."""
    xyz = np.random.default_rng(0).normal(size=(3, 5, 3)).astype(np.float32)
    icntrl = struct.pack("<9if10i", 3, 0, 1, 3, 0, 0, 0, 0, 0, 0.01, 1, 0, 0, 0, 0, 0, 0, 0, 0, 24)
    data = _record(b"CORD" + icntrl) + _record(struct.pack("<i", 1) + b" " * 80) + _record(struct.pack("<i", 5))
    for frame in xyz:
        data += _record(np.zeros(6).tobytes()) + b"".join(_record(frame[:, k].tobytes()) for k in range(3))
    (tmp_path / "t.dcd").write_bytes(data)
    np.testing.assert_array_equal(atoms.read_dcd(tmp_path / "t.dcd"), xyz)


@needs_adk
def test_adk_trajectory_known_facts():
    frames, z = atoms.adk_trajectory()
    assert frames.shape == (98, 3341, 3)
    assert set(np.unique(z)) <= {1, 6, 7, 8, 16} and (z == 16).sum() > 0  # H C N O S
    assert 0.2 < atoms.rmsd(frames[0], frames[1]) < 2 and 5 < atoms.rmsd(frames[0], frames[-1]) < 9  # closed → open, ~7 Å
    assert np.abs(np.einsum("n,fnd->fd", z, frames) / z.sum()).max() < 1e-3  # centred


def test_map_pseudo_atoms_deterministic(real_data):
    path, mass, apix = sets.RIBOSOME
    coords, weights, sigma = atoms.map_pseudo_atoms(real_data / path, mass, apix=apix)
    again = atoms.map_pseudo_atoms(real_data / path, mass, apix=apix)
    np.testing.assert_array_equal(coords, again[0])
    assert 2000 <= len(coords) <= 6000 and (weights > 0).all() and sigma == pytest.approx(5.0)
    assert 100 < atoms.radius(coords) < 160  # a 70S ribosome is ~250 Å across


# -- image formation ------------------------------------------------------------------------


_PADDED: dict = {}  # transforms of the 2× padded true maps, by (truth, particle)


def oracle_images(particles, truth, idx, *, ctf: bool, shift_sign: float = -1.0, transpose: bool = False) -> torch.Tensor:
    """cryonb's images of particles ``idx`` from the .star and the true maps (2× padded slices)."""
    D = particles.box_size
    out = []
    for i in idx:
        key = (id(truth), int(i))
        if key not in _PADDED:
            _PADDED[key] = fft3_center(F.pad(sets.true_volume(truth, int(i)), [D // 2] * 6))
        R = torch.as_tensor(particles.rotations[i : i + 1])
        slice_ = extract_slices(_PADDED[key], R.transpose(1, 2) if transpose else R)
        image_ft = fft2_center(ifft2_center(slice_).real[:, D // 2 : D // 2 + D, D // 2 : D // 2 + D])
        image_ft = shift_images_ft(image_ft, shift_sign * torch.as_tensor(particles.shifts[i : i + 1]))
        if ctf:
            image_ft = image_ft * ctf_images(particles.ctf[i : i + 1], D, particles.apix)
        out.append(ifft2_center(image_ft).real[0])
    return torch.stack(out)


def corr(a, b) -> np.ndarray:
    a, b = (np.asarray(x, np.float64).reshape(len(x), -1) for x in (a, b))
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def suite_projections(truth, idx) -> torch.Tensor:
    coords, weights, sigma = sets.MODELS[str(truth["set"])](truth, np.asarray(idx))
    f32 = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
    R = f32(imaging.euler_to_matrix(*truth["euler"][idx].T))
    return imaging.splat_images(f32(coords), f32(weights), f32(sigma), R, f32(truth["shifts"][idx]), int(truth["box"]), float(truth["apix"]))


@needs_adk
def test_star_poses_reproduce_the_projections(adk_sets):
    """cryonb reads the .star and projects the true map: the suite's analytic projection, noiseless, no CTF."""
    clean, _ = adk_sets
    truth, particles = clean["truth_arrays"], load_particles(clean["star"])
    np.testing.assert_allclose(particles.shifts, truth["shifts"], atol=1e-4)
    idx = np.argsort(-np.abs(truth["shifts"]).max(1))[:8]  # the most shifted particles
    mine = suite_projections(truth, idx)
    assert corr(oracle_images(particles, truth, idx, ctf=False), mine).min() > 0.98
    assert corr(oracle_images(particles, truth, idx, ctf=False, shift_sign=1.0), mine).mean() < 0.9  # shift sign matters
    assert corr(oracle_images(particles, truth, idx, ctf=False, transpose=True), mine).mean() < 0.95  # so does R vs Rᵀ


@needs_adk
def test_written_images_are_cryonbs_forward_model(adk_sets):
    """The stored noiseless images = IFFT(cryonb CTF · FFT(cryonb projection at the .star pose))."""
    clean, _ = adk_sets
    particles = load_particles(clean["star"])
    idx = np.arange(4)
    assert corr(oracle_images(particles, clean["truth_arrays"], idx, ctf=True), images(clean["stack"])[idx]).min() > 0.98


@needs_adk
def test_ctf_matches_cryonb(adk_sets):
    clean, _ = adk_sets
    particles = load_particles(clean["star"])
    p = torch.as_tensor(particles.ctf[:8], dtype=torch.float64)[:, :, None, None]
    assert np.allclose(particles.ctf[:, 3:6], [300.0, 2.7, 0.1]) and particles.apix == pytest.approx(clean["truth_arrays"]["apix"])
    freqs = frequency_grid(BOX, 2, particles.apix, dtype=torch.float64)
    theirs = compute_ctf(freqs, *p.unbind(1))
    mine = imaging.ctf_values(freqs[..., 0], freqs[..., 1], p[:, 0], p[:, 1], p[:, 2])
    assert (mine - theirs).abs().max() < 2e-3  # the wavelengths differ by 6e-6 (constants vs a fit)
    assert 10_000 <= particles.ctf[:, :2].min() and particles.ctf[:, :2].max() <= 25_000


@needs_adk
def test_snr_and_noise(adk_sets):
    clean, noisy = adk_sets
    signal, noise = images(clean["stack"]).astype(np.float64), images(noisy["stack"]) - images(clean["stack"])
    measured = signal.var(axis=(1, 2)).mean() / noise.var()
    assert measured == pytest.approx(0.1, rel=0.1)
    assert noisy["measured_snr"] == pytest.approx(0.1, rel=0.1)
    assert abs(noise.mean()) < 0.01 * noise.std()


@needs_adk
def test_adk_truth_is_uneven_and_bimodal(adk_sets):
    c = adk_sets[0]["truth_arrays"]["coordinate"]
    assert 0 <= c.min() and c.max() <= 1
    hist = np.histogram(c, bins=5, range=(0, 1))[0]
    assert hist[2] < hist[0] and hist[2] < hist[4] and hist[0] > 1.3 * hist[4]
    truth = sets.load_truth(adk_sets[0]["truth"])
    assert truth["box"] == BOX and np.isnan(truth["snr"]) and truth["seed"] == 0
    closed, open_ = sets.true_volumes(truth, [int(np.argmin(c)), int(np.argmax(c))])
    assert corr(closed[None], open_[None])[0] < 0.99


def test_determinism(tmp_path, real_data):
    run = lambda d, seed: sets.ribosome_motion(tmp_path / d, n=24, box=BOX, snr=0.1, seed=seed, data_dir=real_data, progress=False)  # noqa: E731
    a, b, c = run("a", 0), run("b", 0), run("c", 1)
    assert a["stack"].read_bytes() == b["stack"].read_bytes()
    assert a["star"].read_bytes() == b["star"].read_bytes()
    assert a["stack"].read_bytes() != c["stack"].read_bytes()
    truth = a["truth_arrays"]
    assert 0.2 < truth["weights"][truth["moving"]].sum() / truth["weights"].sum() < 0.3
    moved = sets._motion_atoms(truth, np.array([0]))[0][0] - sets._motion_atoms({**truth, "coordinate": np.zeros(24)}, np.array([0]))[0][0]
    assert np.abs(moved[~truth["moving"]]).max() == 0


def test_assembly_classes(assembly_set):
    truth = assembly_set["truth_arrays"]
    assert np.array_equal(truth["class"], sets.assembly_labels(300, 0))  # what rare_probe relies on
    names = list(truth["class_names"])
    counts = np.bincount(truth["class"], minlength=len(names))
    np.testing.assert_array_equal(counts, sets.allocate(300, sets.ASSEMBLY_PROPORTIONS))
    assert names[truth["rare_class"]] == "70S-ABC" and counts[truth["rare_class"]] / 300 <= 0.05
    assert names[truth["junk_class"]] == "junk" and counts[truth["junk_class"]] == 30
    assert ((truth["junk_kind"] >= 0) == (truth["class"] == truth["junk_class"])).all() and (truth["junk"] == (truth["junk_kind"] >= 0)).all()
    maps = sets.class_volumes(truth)
    mass = {k: float(v.sum()) for k, v in maps.items()}
    assert mass["70S-A"] / mass["70S"] == pytest.approx(0.85, abs=0.01) and mass["70S-AB"] / mass["70S"] == pytest.approx(0.70, abs=0.01)
    assert mass["70S-ABC"] / mass["70S"] == pytest.approx(0.65, abs=0.01) and mass["beta-gal"] < 0.3 * mass["70S"]
    particles = load_particles(assembly_set["star"])
    not_empty = truth["junk_kind"] != sets.JUNK_KINDS.index("empty")
    idx = [int(np.flatnonzero((truth["class"] == k) & not_empty)[0]) for k in range(len(names))]
    for i in idx:  # each class's atoms and true map agree (junk too)
        assert corr(oracle_images(particles, truth, [i], ctf=False), suite_projections(truth, [i]))[0] > 0.98
    assert assembly_set["measured_snr"] == pytest.approx(0.1, rel=0.1)


def test_true_maps_for_scoring_share_class_maps(assembly_set):
    from benchmarks.suite.drgn import true_map_function

    truth = assembly_set["truth_arrays"]
    true_map = true_map_function(Path(assembly_set["star"]).parent, device="cpu")
    junk = int(truth["junk_class"])
    a, b = (int(i) for i in np.flatnonzero(truth["class"] == 0)[:2])
    j1, j2 = (int(i) for i in np.flatnonzero(truth["class"] == junk)[:2])
    assert true_map(a) is true_map(b)  # one map per class, built once
    torch.testing.assert_close(true_map(a), sets.true_volume(truth, b))
    assert sets.shared_map(truth, j1) is None and not torch.equal(true_map(j1), true_map(j2))  # junk: each its own
