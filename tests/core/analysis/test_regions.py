import pickle

import numpy as np
import pytest
import torch

from cryonb.core.analysis import Regions, read_region
from cryonb.core.errors import InputError
from cryonb.core.io.pickles import read_index, write_index_pickle
from cryonb.core.particles import ParticleSet, load_particles, save_selection, write_star
from cryonb.core.rotations import random_rotations


def test_regions_store_combine_and_forget():
    regions = Regions(10)
    regions.add("a", [1, 2, 3, 3])
    regions.add("b", np.arange(10) >= 3)
    regions.add("c", [9])
    np.testing.assert_array_equal(regions["a"], [1, 2, 3])
    np.testing.assert_array_equal(regions.union("a", "c"), [1, 2, 3, 9])
    np.testing.assert_array_equal(regions.intersection("a", "b"), [3])
    np.testing.assert_array_equal(regions.difference("b", "a", "c"), [4, 5, 6, 7, 8])
    regions.combine("a or c", "union", ["a", "c"])
    assert regions.names == ["a", "b", "c", "a or c"]
    assert regions.counts() == {"a": 3, "b": 7, "c": 1, "a or c": 4}
    np.testing.assert_array_equal(regions.labels(["a", "c"]), [-1, 0, 0, 0, -1, -1, -1, -1, -1, 1])
    regions.remove("b")
    regions.rename("c", "last")
    assert regions.names == ["a", "last", "a or c"] and "b" not in regions
    assert regions.unique_name("a") == "a 2" and regions.unique_name("new") == "new"
    regions.add("a", [0])  # replaces, keeping its place
    assert regions.names[0] == "a" and regions.counts()["a"] == 1


@pytest.mark.parametrize("call, problem", [
    (lambda r: r.add("x", [10]), "out of range"),
    (lambda r: r.add("x", [0.5]), "not integers"),
    (lambda r: r.add("x", np.ones(3, bool)), "mask of shape"),
    (lambda r: r.add("a/b", [1]), "not a region name"),
    (lambda r: r.add(" a", [1]), "not a region name"),
    (lambda r: r["missing"], "no region named 'missing'"),
    (lambda r: r.evaluate("xor", ["a"]), "unknown operation"),
    (lambda r: r.evaluate("union", []), "of no regions"),
])
def test_bad_input_is_explained(call, problem):
    regions = Regions(10)
    regions.add("a", [1])
    with pytest.raises(InputError, match=problem):
        call(regions)


def stack_particles(tmp_path, n=30):
    rng = np.random.default_rng(0)
    ctf = np.tile(np.array([15000, 15000, 0, 300, 2.7, 0.1, 0, 0], np.float32), (n, 1))
    arrays = ParticleSet(images=rng.standard_normal((n, 8, 8), dtype=np.float32),
                         rotations=random_rotations(n, torch.Generator().manual_seed(0)).numpy(), ctf=ctf, apix=2.0)
    write_star(arrays, tmp_path / "all.star")
    return load_particles(tmp_path / "all.star")


def test_index_files_and_star_subsets_become_positions(tmp_path):
    particles = stack_particles(tmp_path)
    run_particles = particles.subset(np.arange(5, 30))  # a run trained on rows 5..29: position = row - 5
    wanted_rows = np.array([3, 7, 8, 20, 29])  # row 3 is not in the run
    write_index_pickle(wanted_rows, tmp_path / "ind.pkl")
    np.save(tmp_path / "ind.npy", wanted_rows)
    (tmp_path / "ind.txt").write_text("# rows\n3\n7 8, 20\n29\n")
    for name in ("ind.pkl", "ind.npy", "ind.txt"):
        np.testing.assert_array_equal(read_region(tmp_path / name, run_particles), [2, 3, 15, 24], err_msg=name)
    save_selection(particles.subset(wanted_rows), tmp_path / "subset")  # a .star subset of the whole file
    np.testing.assert_array_equal(read_region(tmp_path / "subset.star", run_particles), [2, 3, 15, 24])
    np.testing.assert_array_equal(read_index(tmp_path / "subset.ind.pkl"), wanted_rows)
    np.testing.assert_array_equal(read_region(tmp_path / "ind.npy", n=10), [3, 7, 8])  # no particles: positions


def test_region_files_refused_with_reasons(tmp_path):
    particles = stack_particles(tmp_path, n=10)
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"rows": [1, 2]}, f)  # a dict: not what an index pickle holds
    with pytest.raises(InputError, match="refusing to unpickle|expected a 1D integer"):
        read_region(tmp_path / "evil.pkl", particles)
    (tmp_path / "bad.txt").write_text("1\n2\nthree\n")
    with pytest.raises(InputError, match="'three' is not an integer"):
        read_region(tmp_path / "bad.txt", particles)
    np.save(tmp_path / "far.npy", np.array([100, 200]))
    with pytest.raises(InputError, match="none of its 2 particle rows"):
        read_region(tmp_path / "far.npy", particles)
    with pytest.raises(InputError, match="cannot read particle indices"):
        read_region(tmp_path / "rows.csv", particles)
    arrays = ParticleSet(rotations=particles.rotations)
    with pytest.raises(InputError, match="no image files"):
        read_region(tmp_path / "all.star", arrays)


def test_save_writes_the_region_only(tmp_path):
    particles = stack_particles(tmp_path, n=12)
    regions = Regions(12)
    regions.add("few", [2, 5, 11])
    regions.add("none", [])
    written = regions.save("few", particles, tmp_path / "few")
    np.testing.assert_array_equal(read_index(written["ind_npy"]), [2, 5, 11])
    assert len(load_particles(written["star"])) == 3
    with pytest.raises(InputError, match="is empty"):
        regions.save("none", particles, tmp_path / "none")
    with pytest.raises(InputError, match="12 particles|particles for regions"):
        regions.save("few", particles.subset(np.arange(4)), tmp_path / "x")
