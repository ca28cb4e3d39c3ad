import pickle

import numpy as np
import pandas as pd
import pytest
import starfile
from hypothesis import given
from hypothesis import strategies as st

from cryonb.core.errors import InputError
from cryonb.core.io.star import read_star, write_star_subset

from metadata_checks import assert_well_formed


def _oracle(path):
    with open(path, "rb") as f:
        return pickle.load(f)  # trusted test oracle written by cryoDRGN


def test_poses_and_ctf_match_cryodrgn_oracles(real_data):
    star = read_star(real_data / "cryodrgn/FinalRefinement-OriginalParticles-PfCRT.star", ctf_defaults={"amplitude_contrast": 0.1})
    rot, trans = _oracle(real_data / "cryodrgn/pose.star.pkl")
    np.testing.assert_allclose(star.rotations, rot, atol=1e-6)
    np.testing.assert_allclose(star.shifts, trans * 300, atol=1e-6)
    ctf = _oracle(real_data / "cryodrgn/ctf1.pkl")
    np.testing.assert_allclose(star.ctf[:, :7], ctf[:, 2:], rtol=1e-6)
    assert star.apix == pytest.approx(ctf[0, 1], rel=1e-6)
    assert star.version == "3.0" and star.particle_block == "images"


def test_missing_amplitude_contrast_gives_no_ctf_not_an_error(real_data):
    star = read_star(real_data / "cryodrgn/FinalRefinement-OriginalParticles-PfCRT.star")
    assert star.ctf is None and star.rotations is not None


def test_optics_block_before_or_after_particles_is_the_same(real_data):
    a = read_star(real_data / "cryodrgn/relion31.star")
    b = read_star(real_data / "cryodrgn/relion31.v2.star")
    assert list(a.blocks) == ["optics", "particles"] and list(b.blocks) == ["particles", "optics"]
    for name in ("rotations", "shifts", "ctf", "pixel_sizes", "image_rows"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.image_paths == b.image_paths and a.version == b.version == "3.1"
    assert a.apix == 2.806 and a.box_size == 256
    # rlnOriginXAngst / rlnImagePixelSize gives pixels
    np.testing.assert_allclose(a.shifts[0], [0.019324 / 2.806, -0.64686 / 2.806], rtol=1e-6)
    np.testing.assert_allclose(a.ctf[0], [13108.082418, 12845.582418, -160.39, 300, 0.01, 0.1, 0, 0], rtol=1e-6)


def test_six_optics_groups_are_merged_per_particle(real_data):
    star = read_star(real_data / "cryodrgn/relion31.6opticsgroups.star")
    with pytest.warns(UserWarning, match="different pixel sizes"):
        assert star.apix == 1.25  # the most common one
    optics = star.blocks["optics"].set_index("rlnOpticsGroup")
    groups = star.table["rlnOpticsGroup"].to_numpy()
    assert len(np.unique(groups)) > 1
    np.testing.assert_allclose(star.pixel_sizes, optics.loc[groups, "rlnImagePixelSize"].to_numpy())
    np.testing.assert_allclose(star.ctf[:, 4], optics.loc[groups, "rlnSphericalAberration"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(star.ctf[:, 3], 200.0)
    angst = star.table[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy()
    np.testing.assert_allclose(star.shifts, angst / star.pixel_sizes[:, None], rtol=1e-6)


def test_relion5_parses(real_data):
    star = read_star(real_data / "cryodrgn/relion5.star")
    assert star.version == "5.0" and len(star) == 17 and star.apix == 0.89 and star.box_size == 448
    assert star.rotations.shape == (17, 3, 3) and star.ctf.shape == (17, 8)
    np.testing.assert_allclose(star.ctf[:, 3], 100.0)


def test_relion30_block_names_and_pixel_size_from_magnification(real_data):
    star = read_star(real_data / "aspire/sample_particles_relion30.star")
    assert star.particle_block == "model_class_1" and star.optics_block is None
    assert star.apix == pytest.approx(5.0 * 1e4 / 37369.207031)
    np.testing.assert_allclose(star.shifts[0], [0.1996, 0.1996])  # rlnOriginX/Y are pixels
    empiar = read_star(real_data / "cryodrgn/empiar_10076_7.star")
    assert empiar.particle_block == "" and empiar.rotations is None and empiar.shifts is None
    assert empiar.image_rows.tolist() == list(range(7))


def test_aspire_relion31_optics_groups_change_voltage(real_data):
    star = read_star(real_data / "aspire/sample_particles_relion31.star")
    groups = star.table["rlnOpticsGroup"].to_numpy()
    np.testing.assert_array_equal(star.ctf[:, 3], np.where(groups == 2, 200.0, 300.0))
    assert star.apix == 1.4


def test_user_apix_overrides_the_file(real_data):
    star = read_star(real_data / "cryodrgn/relion31.star", apix=1.403)
    assert star.apix == 1.403
    np.testing.assert_allclose(star.shifts[0, 0], 0.019324 / 1.403, rtol=1e-6)


def test_not_a_particle_file(real_data):
    with pytest.raises(InputError, match=r"post-processing result .*not particles \(blocks: data_general, data_fsc, data_guinier\)"):
        read_star(real_data / "starfile/postprocess.star")


def test_subset_round_trip_keeps_columns_optics_and_order(real_data, tmp_path):
    src = read_star(real_data / "cryodrgn/relion31.v2.star")
    out = write_star_subset(src, [4, 1, 3], tmp_path / "sub.star")
    back = read_star(out, datadir=real_data / "cryodrgn")
    assert list(back.blocks) == ["particles", "optics"]
    pd.testing.assert_frame_equal(back.blocks["optics"], src.blocks["optics"])
    expected = src.blocks["particles"].iloc[[4, 1, 3]].reset_index(drop=True)
    pd.testing.assert_frame_equal(back.blocks["particles"], expected)
    np.testing.assert_array_equal(back.rotations, src.rotations[[4, 1, 3]])
    assert back.image_paths == [src.image_paths[i] for i in (4, 1, 3)]


def test_subset_of_relion30_keeps_block_name(real_data, tmp_path):
    src = real_data / "cryodrgn/empiar_10076_7.star"
    out = write_star_subset(src, [6, 0], tmp_path / "sub.star")
    blocks = starfile.read(out, always_dict=True)
    assert list(blocks) == [""] and blocks[""]["rlnImageName"].tolist() == ["7@empiar_10076_7.mrc", "1@empiar_10076_7.mrc"]
    with pytest.raises(InputError, match="out of range"):
        write_star_subset(src, [7], tmp_path / "bad.star")




@given(data=st.data())
def test_fuzz_mangled_star_text(real_data, tmp_path_factory, data):
    """Deleted/duplicated lines, corrupted numbers, truncation: a sane load or an InputError."""
    lines = (real_data / "cryodrgn/relion31.star").read_text().splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["delete", "duplicate", "corrupt", "truncate"]))
        i = data.draw(st.integers(0, len(lines) - 1))
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "corrupt":
            words = lines[i].split()
            if words:
                words[data.draw(st.integers(0, len(words) - 1))] = data.draw(st.sampled_from(["nan", "abc", "1e999", "-", "", "@", "0@x"]))
            lines[i] = " ".join(words)
        else:
            lines = lines[:i]
        if not lines:
            break
    path = tmp_path_factory.mktemp("fuzz") / "p.star"
    path.write_text("\n".join(lines))
    try:
        star = read_star(path)
    except InputError:
        return
    assert_well_formed(star)
    assert star.image_rows is None or (star.image_rows >= 0).all()
