import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cryonb.core.errors import InputError
from cryonb.core.io.cryosparc import read_cs, write_cs_subset

from metadata_checks import assert_well_formed


def _oracle(path):
    with open(path, "rb") as f:
        return pickle.load(f)  # trusted test oracle written by cryoDRGN


def test_poses_and_ctf_match_cryodrgn_oracles(real_data):
    cs = read_cs(real_data / "cryodrgn/cryosparc_P12_J24_001_particles.cs")
    rot, trans = _oracle(real_data / "cryodrgn/pose.cs.pkl")
    # cryoDRGN: rot = expmap(pose).T; trans = shift / D
    np.testing.assert_allclose(cs.rotations, rot, atol=2e-6)
    np.testing.assert_allclose(cs.shifts, trans * 180, atol=1e-5)
    ctf = _oracle(real_data / "cryodrgn/ctf2.pkl")
    np.testing.assert_allclose(cs.ctf[:, :7], ctf[:, 2:], rtol=1e-6, atol=1e-5)
    assert (cs.apix, cs.box_size, len(cs)) == (2.95, 180, 2019)


def test_import_marker_is_stripped_and_alignments2d_are_not_poses(real_data):
    cs = read_cs(real_data / "cryodrgn/cryosparc_J2_particles_exported.cs", datadir="/data")
    assert str(cs.image_paths[0]).startswith("/data/J1/imported/") and ">" not in str(cs.image_paths[0])
    assert cs.rotations is None and cs.shifts is None and cs.box_size == 300
    np.testing.assert_array_equal(cs.ctf[:, 7], cs.array["ctf/bfactor"])


def test_empty_dataset_loads(real_data):
    cs = read_cs(real_data / "cryosparc_tools/4k_dataset.cs")
    assert len(cs) == 0 and cs.rotations.shape == (0, 3, 3) and cs.ctf is None and cs.image_paths is None


def test_subset_round_trip_keeps_every_field(real_data, tmp_path):
    src = real_data / "cryodrgn/cryosparc_P12_J24_001_particles.cs"
    out = write_cs_subset(src, [10, 3, 2000], tmp_path / "sub.cs")
    assert out.name == "sub.cs" and sorted(p.name for p in tmp_path.iterdir()) == ["sub.cs"]
    original, back = read_cs(src), read_cs(out)
    assert back.array.dtype == original.array.dtype
    np.testing.assert_array_equal(back.array, original.array[[10, 3, 2000]])
    np.testing.assert_array_equal(back.rotations, original.rotations[[10, 3, 2000]])


def test_nan_ctf_is_an_error(real_data, tmp_path):
    array = np.load(real_data / "cryodrgn/empiar_10076_7.cs")
    array["ctf/df1_A"][3] = np.nan
    with open(tmp_path / "nan.cs", "wb") as f:
        np.save(f, array)
    with pytest.raises(InputError, match=r"field ctf/df1_A has 1 NaN or infinite values \(first in row 4\)"):
        read_cs(tmp_path / "nan.cs")


@pytest.fixture(scope="module")
def small_cs(real_data):
    return np.load(real_data / "cryodrgn/cryosparc_P12_J24_001_particles.cs")[:20]


@given(data=st.data())
def test_fuzz_mangled_cs(small_cs, tmp_path_factory, data):
    """Dropped fields, NaNs, flipped or truncated bytes: a sane load or an InputError."""
    array = small_cs
    names = list(array.dtype.names)
    keep = [n for n in names if data.draw(st.booleans()) or n in ("uid",)]
    array = array[keep].copy() if data.draw(st.booleans()) else array.copy()
    numeric = [n for n in array.dtype.names if array.dtype[n].kind == "f"]
    if numeric and data.draw(st.booleans()):
        array[data.draw(st.sampled_from(numeric))][data.draw(st.integers(0, 19))] = np.nan
    path = tmp_path_factory.mktemp("fuzz") / "p.cs"
    with open(path, "wb") as f:
        np.save(f, array)
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(0, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path.write_bytes(bytes(raw))
    try:
        cs = read_cs(path)
    except InputError:
        return
    assert_well_formed(cs)
    assert cs.apix is None or np.isfinite(cs.apix)
