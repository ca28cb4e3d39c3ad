import warnings

import mrcfile
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cryonb.core.errors import InputError
from cryonb.core.io.mrc import open_stack, read_header, read_map, write_map, write_stack


def _raw(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(path, permissive=True) as mrc:
            return np.array(mrc.data), mrc.header


def test_permuted_axes_are_transposed_to_zyx(real_data):
    path = real_data / "mrcfile/EMD-3001.map"
    raw, header = _raw(path)
    assert (int(header.mapc), int(header.mapr), int(header.maps)) == (3, 1, 2)
    with pytest.warns(UserWarning, match="anisotropic"):
        volume, apix = read_map(path)
    # stored [sections=y, rows=x, columns=z] -> [z, y, x]
    np.testing.assert_array_equal(volume, raw.transpose(2, 0, 1))
    assert volume.shape == (73, 25, 43)
    assert apix == pytest.approx(np.mean([0.44825, 0.3925, 0.45875]), rel=1e-4)
    quirks = " ".join(read_header(path).quirks)
    assert "permuted axes" in quirks and "anisotropic" in quirks and "160-byte extended header" in quirks


@pytest.mark.parametrize(
    "name, apix, quirk",
    [
        ("aspire/clean70SRibosome_vol_65p.mrc", None, "pixel size unset"),
        ("tomodrgn/10076_classD_32.mrc", 1.0, "placeholder"),
        ("tempy/emd_5168.map", 1.742, "NXSTART/NYSTART/NZSTART = (-50, -50, -50)"),
        ("sfftk/emd_5625.map", 4.23, "NXSTART/NYSTART/NZSTART = (-28, -28, -28)"),
        ("relion/ref_model.mrc", 3.54, "origin (-3.54, -3.54, -3.54)"),
    ],
)
def test_map_header_quirks(real_data, name, apix, quirk):
    volume, got = read_map(real_data / name)
    raw, _ = _raw(real_data / name)
    np.testing.assert_array_equal(volume, raw)  # standard axis order: data as stored
    assert volume.dtype == np.float32 and volume.flags.c_contiguous
    assert got == (None if apix is None else pytest.approx(apix, rel=1e-5))
    assert any(quirk in q for q in read_header(real_data / name).quirks)


def test_zero_machine_stamp_and_missing_map_id_are_read(real_data):
    quirks = read_header(real_data / "cryodrgn/relion31.mrcs").quirks
    assert any("'MAP ' id" in q for q in quirks) and any("machine stamp" in q for q in quirks)
    with open_stack(real_data / "cryodrgn/relion31.mrcs") as stack:
        assert len(stack) == 5 and stack.box_size == 256 and stack.apix == 1.0


def test_mrc_holding_a_stack_opens_as_a_stack(real_data):
    with open_stack(real_data / "cryodrgn/empiar_10076_7.mrc") as stack:
        assert (len(stack), stack.box_size, stack.apix) == (7, 320, None)
        assert isinstance(stack.data, np.memmap)
    assert read_header(real_data / "cryodrgn/empiar_10076_7.mrc").looks_like_stack
    assert not read_header(real_data / "relion/ref_model.mrc").looks_like_stack


def test_nan_map_is_an_input_error(tmp_path):
    volume = np.zeros((8, 8, 8), np.float32)
    volume[1, 2, 3] = np.nan
    with mrcfile.new(tmp_path / "nan.mrc") as mrc:
        mrc.set_data(volume)
    with pytest.raises(InputError, match=r"nan\.mrc: 1 voxels are NaN.*Fix:"):
        read_map(tmp_path / "nan.mrc")


def test_map_round_trip(tmp_path):
    volume = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
    write_map(tmp_path / "v.mrc", volume, apix=2.5)
    back, apix = read_map(tmp_path / "v.mrc")
    np.testing.assert_array_equal(back, volume)
    assert apix == 2.5


def test_stack_round_trip_single_image_and_non_square(tmp_path):
    images = np.random.default_rng(1).normal(size=(5, 12, 12)).astype(np.float32)
    write_stack(tmp_path / "s.mrcs", images, apix=1.5)
    with open_stack(tmp_path / "s.mrcs") as stack:
        np.testing.assert_array_equal(stack.data, images)
        assert stack.apix == 1.5
    with mrcfile.new(tmp_path / "one.mrc") as mrc:
        mrc.set_data(images[0])
    with open_stack(tmp_path / "one.mrc") as stack:
        assert stack.data.shape == (1, 12, 12)
    with mrcfile.new(tmp_path / "rect.mrcs") as mrc:
        mrc.set_data(np.zeros((3, 10, 12), np.float32))
    with pytest.raises(InputError, match="square"):
        open_stack(tmp_path / "rect.mrcs")


def test_truncated_and_missing_files(tmp_path, real_data):
    data = (real_data / "tomodrgn/10076_classD_32.mrc").read_bytes()
    (tmp_path / "cut.mrc").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="data are not"):
        read_map(tmp_path / "cut.mrc")
    with pytest.raises(InputError, match="not found"):
        read_map(tmp_path / "absent.mrc")


@given(data=st.data())
def test_fuzz_mangled_mrc_headers(tmp_path_factory, real_data, data):
    """Flipped header bytes or truncation: a sane volume or an InputError, nothing else."""
    raw = bytearray((real_data / "mrcfile/EMD-3197.map").read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, 1023))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path_factory.mktemp("fuzz") / "m.map"
    path.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            volume, apix = read_map(path)
        except InputError:
            return
    assert volume.ndim == 3 and volume.dtype == np.float32 and np.isfinite(volume).all()
    assert apix is None or (np.isfinite(apix) and apix > 0)
