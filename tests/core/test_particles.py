import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from cryonb.core.errors import InputError
from cryonb.core.io.cryosparc import read_cs
from cryonb.core.io.pickles import read_index
from cryonb.core.io.sources import MrcStackSource, MultiStackSource
from cryonb.core.io.star import read_star
from cryonb.core.particles import ParticleSet, load_particles, save_selection, write_star

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
DATA_FILES = sorted(str(p.relative_to(REAL)) for p in REAL.glob("*/*") if p.suffix in {".star", ".cs", ".mrcs", ".mrc"}) if REAL.is_dir() else []


@pytest.mark.parametrize("name", DATA_FILES)
def test_every_real_file_loads_or_gives_a_clean_input_error(real_data, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            particles = load_particles(real_data / name)
        except InputError as error:
            assert str(error).startswith(str(real_data)) and "Fix:" in str(error)
            return
    n = len(particles)
    assert particles.images is None or particles.images.shape[0] == n
    if n and particles.images is not None:
        assert particles.images[n - 1].shape == (particles.box_size,) * 2


def test_relion31_and_v2_give_identical_sets(real_data):
    a = load_particles(real_data / "cryodrgn/relion31.star")
    b = load_particles(real_data / "cryodrgn/relion31.v2.star")
    for name in ("rotations", "shifts", "ctf", "indices"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.apix == b.apix == 2.806 and len(a) == 5
    np.testing.assert_array_equal(a.images[:], b.images[:])


@pytest.mark.parametrize("star", ["sample_particles_relion30.star", "sample_particles_relion31.star"])
def test_aspire_stars_load_images_from_datadir(real_data, tmp_path, star):
    (tmp_path / star).write_bytes((real_data / "aspire" / star).read_bytes())  # star elsewhere, stack in datadir
    particles = load_particles(tmp_path / star, datadir=real_data / "aspire")
    direct = MrcStackSource(real_data / "aspire/sample.mrcs")
    assert particles.images.shape == direct.shape == (17, 200, 200)
    np.testing.assert_array_equal(particles.images[:], direct[:])


def test_empiar_star_cs_and_stack_agree(real_data):
    star = load_particles(real_data / "cryodrgn/empiar_10076_7.star")
    cs = load_particles(real_data / "cryodrgn/empiar_10076_7.cs")
    stack = load_particles(real_data / "cryodrgn/empiar_10076_7.mrc")
    np.testing.assert_array_equal(star.images[:], stack.images[:])
    np.testing.assert_array_equal(cs.images[:], stack.images[:])
    np.testing.assert_allclose(star.ctf[:, [0, 1, 3, 4, 5]], cs.ctf[:, [0, 1, 3, 4, 5]], rtol=1e-5)
    np.testing.assert_allclose(star.ctf[:, 2], cs.ctf[:, 2], atol=1e-3)  # 5.28 deg vs 0.092153385 rad
    assert star.apix == pytest.approx(cs.apix, rel=1e-6) and stack.apix is None


def test_tilt_series_star_rows_index_into_a_longer_stack(real_data):
    particles = load_particles(real_data / "cryodrgn/sta_testing_bin8.star")
    assert len(particles) == 219 and particles.images.shape == (219, 64, 64)
    stack = MrcStackSource(real_data / "cryodrgn/ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs")
    assert len(stack) == 220
    np.testing.assert_array_equal(particles.images[218], stack[218])


def test_bare_stack_with_shorter_pickles_is_one_clear_error(real_data):
    stack = real_data / "cryodrgn/ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs"
    with pytest.raises(InputError) as info:
        load_particles(stack, poses=real_data / "cryodrgn/sta_pose.pkl", ctf=real_data / "cryodrgn/sta_ctf.pkl")
    message = str(info.value)
    assert "sta_ctf.pkl" in message and stack.name in message and "219" in message and "220" in message and "Fix:" in message


def test_stack_with_pickles_takes_cryodrgn_pixel_rule(real_data, tmp_path):
    stack = MrcStackSource(real_data / "cryodrgn/ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs")
    from cryonb.core.io.mrc import write_stack

    write_stack(tmp_path / "first219.mrcs", stack[:219], apix=None)
    particles = load_particles(tmp_path / "first219.mrcs", poses=real_data / "cryodrgn/sta_pose.pkl", ctf=real_data / "cryodrgn/sta_ctf.pkl")
    assert particles.apix == pytest.approx(512 * 1.82 / 64)  # 14.56 Å, as the README says
    assert particles.rotations.shape == (219, 3, 3) and particles.shifts.shape == (219, 2)


def test_missing_stack_names_the_path_and_datadir_fix(real_data):
    with pytest.raises(InputError, match=r"Extract/job012/FinalRefinement-OriginalParticles-PfCRT\.mrcs: image stack not found.*datadir="):
        load_particles(real_data / "cryodrgn/FinalRefinement-OriginalParticles-PfCRT.star")
    meta = load_particles(real_data / "cryodrgn/FinalRefinement-OriginalParticles-PfCRT.star", images=False)
    assert meta.images is None and meta.rotations.shape == (5, 3, 3) and meta.box_size is None


def test_loading_is_lazy(real_data):
    particles = load_particles(real_data / "cryodrgn/relion31.star")
    assert isinstance(particles.images, MultiStackSource) and particles.images._stacks == {}


def test_particle_set_validates_lengths_and_subsets_keep_original_indices():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(6, 8, 8)).astype(np.float32)
    with pytest.raises(InputError, match="lengths disagree"):
        ParticleSet(images, rotations=np.eye(3)[None].repeat(5, 0))
    with pytest.raises(InputError, match=r"shifts must have shape \(N, 2\)"):
        ParticleSet(images, shifts=np.zeros((6, 3)))
    p = ParticleSet(images, shifts=np.arange(12).reshape(6, 2), apix=2)
    assert len(p) == 6 and p.box_size == 8 and p.shifts.dtype == np.float32
    sub = p.subset([5, 1, 3]).subset(np.array([False, True, True]))
    assert sub.indices.tolist() == [1, 3]
    np.testing.assert_array_equal(sub.images[:], images[[1, 3]])
    np.testing.assert_array_equal(sub.shifts, [[2, 3], [6, 7]])
    assert p.subset(slice(4, None)).indices.tolist() == [4, 5]
    assert "n=2" in repr(sub)


def test_save_selection_from_star(real_data, tmp_path):
    particles = load_particles(real_data / "cryodrgn/relion31.star").subset([3, 0])
    out = save_selection(particles, tmp_path / "selected" / "keep")  # the folder is made
    assert sorted(out) == ["ind_npy", "ind_pkl", "star"] and out["star"].parent == tmp_path / "selected"
    back = read_star(out["star"], datadir=real_data / "cryodrgn")
    np.testing.assert_array_equal(back.rotations, particles.rotations)
    assert list(back.blocks) == ["optics", "particles"]
    assert read_index(out["ind_npy"]).tolist() == read_index(out["ind_pkl"]).tolist() == [3, 0]


def test_save_selection_from_cs(real_data, tmp_path):
    particles = load_particles(real_data / "cryodrgn/empiar_10076_7.cs").subset([6, 2])
    out = save_selection(particles, tmp_path / "sel")
    assert out["cs"].name == "sel.cs" and "star" not in out
    np.testing.assert_array_equal(read_cs(out["cs"]).ctf, particles.ctf)


def test_write_star_round_trips_a_fresh_set(tmp_path):
    rng = np.random.default_rng(3)
    from cryonb.core.io.mrc import write_stack
    from cryonb.core.rotations import random_rotations

    n = 6
    images = rng.normal(size=(n, 16, 16)).astype(np.float32)
    write_stack(tmp_path / "particles.mrcs", images, apix=1.5)
    ctf = np.column_stack([rng.uniform(1e4, 2e4, n), rng.uniform(1e4, 2e4, n), rng.uniform(-90, 90, n),
                           np.where(np.arange(n) < 3, 300.0, 200.0), np.full(n, 2.7), np.full(n, 0.1), np.zeros(n), np.zeros(n)])
    particles = ParticleSet(images, random_rotations(n, generator=__import__("torch").Generator().manual_seed(0)).numpy(),
                            rng.normal(size=(n, 2)), ctf, apix=1.5)
    path = write_star(particles, tmp_path / "particles.star", stack=tmp_path / "particles.mrcs")
    back = load_particles(path)
    assert back.apix == 1.5 and len(back) == n
    np.testing.assert_allclose(back.rotations, particles.rotations, atol=1e-5)
    np.testing.assert_allclose(back.shifts, particles.shifts, atol=1e-5)
    np.testing.assert_allclose(back.ctf, particles.ctf, rtol=1e-6)
    np.testing.assert_array_equal(back.images[:], images)
    assert len(read_star(path).blocks["optics"]) == 2  # one optics group per voltage
    plain = save_selection(dataclasses.replace(back, source=particles.source).subset([1]), tmp_path / "one")
    assert read_star(plain["star"]).image_rows.tolist() == [1]


def test_in_memory_particles_are_saved_with_their_images(tmp_path):
    """Simulated particles have no stack files: the selection's images go to an .mrcs beside the .star."""
    from cryonb.core.simulate import simulate

    sim = simulate("hinge", 12, D=16, shift_sigma=1.0, progress=False)
    chosen = sim.particles.subset([7, 2, 5])
    out = save_selection(chosen, tmp_path / "picked")
    assert out["mrcs"] == tmp_path / "picked.mrcs" and out["star"] == tmp_path / "picked.star"
    assert read_star(out["star"]).table["rlnImageName"].tolist() == ["000001@picked.mrcs", "000002@picked.mrcs", "000003@picked.mrcs"]
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temporary left
    back = load_particles(out["star"])
    assert len(back) == 3 and back.apix == chosen.apix and back.box_size == 16
    np.testing.assert_array_equal(back.images[:], chosen.images[:])
    np.testing.assert_allclose(back.rotations, chosen.rotations, atol=1e-5)
    np.testing.assert_allclose(back.shifts, chosen.shifts, atol=1e-5)
    np.testing.assert_allclose(back.ctf, chosen.ctf, rtol=1e-6)
    assert read_index(out["ind_npy"]).tolist() == [7, 2, 5]


def test_write_star_of_in_memory_images_writes_the_stack_and_metadata_only_sets_none(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, 8, 8)).astype(np.float32)
    path = write_star(ParticleSet(images, apix=2.0), tmp_path / "all.star")
    np.testing.assert_array_equal(load_particles(path).images[:], images)
    assert (tmp_path / "all.mrcs").exists()
    meta_only = save_selection(ParticleSet(shifts=np.zeros((3, 2)), apix=2.0), tmp_path / "meta")
    assert "mrcs" not in meta_only and not (tmp_path / "meta.mrcs").exists()
