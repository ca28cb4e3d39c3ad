"""Tomography files are refused clearly (never read as wrong pixels); per-tilt files load with a warning."""

import warnings

import mrcfile
import numpy as np
import pytest

from cryonb.core.errors import InputError
from cryonb.core.io import describe
from cryonb.core.io.mrc import write_stack
from cryonb.core.io.star import read_star
from cryonb.core.particles import load_particles

_OPTICS_2D = """
data_optics

loop_
_rlnOpticsGroup #1
_rlnOpticsGroupName #2
_rlnSphericalAberration #3
_rlnVoltage #4
_rlnTomoTiltSeriesPixelSize #5
_rlnCtfDataAreCtfPremultiplied #6
_rlnImageDimensionality #7
_rlnTomoSubtomogramBinning #8
_rlnImagePixelSize #9
_rlnImageSize #10
_rlnAmplitudeContrast #11
1 opticsGroup1 2.7 300 1.5 0 {dim} 8 12.0 16 0.07
"""

_PARTICLES = """
data_particles

loop_
_rlnTomoName #1
_rlnTomoParticleId #2
_rlnCoordinateX #3
_rlnCoordinateY #4
_rlnCoordinateZ #5
_rlnAngleRot #6
_rlnAngleTilt #7
_rlnAnglePsi #8
{extra_names}_rlnOpticsGroup #{g}
_rlnImageName #{i}
"""


def _tomo_star(tmp_path, *, general, dim, extra=(), image_suffix=".mrcs", n_tilts=5):
    """A small RELION 5 / WarpTools-style tomography particle .star with one stack (or volume) per particle."""
    text = "\n# version 50001\n"
    if general is not None:
        text += f"\ndata_general\n\n_rlnTomoSubTomosAre2DStacks {general}\n\n"
    text += _OPTICS_2D.format(dim=dim)
    names = "".join(f"{name} #{9 + k}\n" for k, (name, _) in enumerate(extra))
    text += _PARTICLES.format(extra_names=names, g=9 + len(extra), i=10 + len(extra))
    rng = np.random.default_rng(0)
    for p in range(3):
        image = tmp_path / f"TS_01_12.00A_{p + 1:06d}{image_suffix}"
        depth = 16 if dim == 3 else n_tilts
        write_stack(image, rng.normal(size=(depth, 16, 16)).astype(np.float32), apix=12.0)
        values = " ".join(str(v).format(p=p + 1) for _, v in extra)
        text += f"TS_01 {p + 1} 100 200 50 10 20 30 {values} 1 {image.name}\n"
    path = tmp_path / "particles.star"
    path.write_text(text)
    return path


def test_warptools_tilt_series_particle_star_is_refused(tmp_path):
    path = _tomo_star(tmp_path, general=1, dim=2, extra=[("_rlnTomoParticleName", "TS_01/{p}"), ("_rlnTomoVisibleFrames", "[1,1,1,1,1]")])
    for load in (read_star, load_particles):
        with pytest.raises(InputError, match="tilt-series particle file") as info:
            load(path)
        assert str(path) in str(info.value) and "single-particle" in str(info.value) and "tomoDRGN" in str(info.value)


def test_tilt_series_particle_star_without_general_block_is_refused(tmp_path):
    path = _tomo_star(tmp_path, general=None, dim=2, extra=[("_rlnTomoParticleName", "TS_01/{p}")])
    with pytest.raises(InputError, match="tilt-series particle file"):
        load_particles(path)


@pytest.mark.parametrize("general", [0, None])
def test_relion5_3d_subtomogram_star_is_refused(tmp_path, general):
    path = _tomo_star(tmp_path, general=general, dim=3, image_suffix=".mrc")
    with pytest.raises(InputError, match="3D subtomograms") as info:
        load_particles(path)
    assert str(path) in str(info.value)


def _plain_star(tmp_path, image_names):
    text = "data_\n\nloop_\n_rlnImageName #1\n_rlnAngleRot #2\n_rlnAngleTilt #3\n_rlnAnglePsi #4\n"
    text += "".join(f"{name} 0 0 0\n" for name in image_names)
    path = tmp_path / "plain.star"
    path.write_text(text)
    return path


def test_image_name_without_index_naming_a_volume_is_refused(tmp_path):
    """No tomography columns at all: the image files themselves are volumes (subtomograms)."""
    for k in range(2):
        with mrcfile.new(tmp_path / f"sub{k}.mrc") as mrc:
            mrc.set_data(np.zeros((16, 16, 16), np.float32))
            mrc.set_volume()
    with pytest.raises(InputError, match="16x16x16 volume: a 3D subtomogram") as info:
        load_particles(_plain_star(tmp_path, ["sub0.mrc", "sub1.mrc"]))
    assert "plain.star" in str(info.value)


def test_image_name_without_index_naming_a_stack_is_refused(tmp_path):
    write_stack(tmp_path / "many.mrcs", np.zeros((5, 8, 8), np.float32), apix=1.0)
    with pytest.raises(InputError, match="holds 5 images of 8x8 .* only the first would be read") as info:
        load_particles(_plain_star(tmp_path, ["1@many.mrcs", "many.mrcs"]))
    assert "1@many.mrcs, 2@many.mrcs" in info.value.fix


def test_image_name_without_index_naming_one_image_loads(tmp_path):
    for k in range(2):
        write_stack(tmp_path / f"one{k}.mrcs", np.full((1, 8, 8), k, np.float32), apix=1.0)
    particles = load_particles(_plain_star(tmp_path, ["one0.mrcs", "one1.mrcs"]))
    assert particles.images[:][:, 0, 0].tolist() == [0.0, 1.0]


def test_real_per_tilt_star_loads_each_tilt_image_with_a_warning(real_data):
    """cryoDRGN-ET's RELION 3.0-style file: one row per tilt image, each with its own pose and CTF."""
    path = real_data / "cryodrgn/sta_testing_bin8.star"
    with pytest.warns(UserWarning, match=r"each of its 219 rows is one tilt image of 6 particles .*_rlnGroupName"):
        particles = load_particles(path)
    assert len(particles) == 219 and particles.box_size == 64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no MAP id, zero machine stamp (see the README)
        with mrcfile.mmap(real_data / "cryodrgn/ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs", permissive=True) as mrc:
            np.testing.assert_array_equal(particles.images[[0, 36, 218]], mrc.data[[0, 36, 218]])
    assert len(np.unique(particles.rotations.reshape(219, -1), axis=0)) == 219  # a pose per tilt
    assert "219 tilt images of 6 tomography particles" in describe(path)


def test_single_particle_files_give_no_tilt_warning(real_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("relion/ap_s_c2d.star", "cryodrgn/relion31.star", "aspire/sample_particles_relion30.star"):
            assert read_star(real_data / name).tilt_series_particles is None


@pytest.mark.parametrize(
    "text, what",
    [
        ("data_TS_01\n\nloop_\n_rlnMicrographName #1\n_rlnTomoXTilt #2\n_rlnTomoYTilt #3\n_rlnDefocusU #4\n"
         "TS_01_001.mrc 0 -60 20000\nTS_01_002.mrc 0 -57 20100\n", "tilt-series table"),
        ("data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoTiltSeriesStarFile #2\n_rlnVoltage #3\nTS_01 ts/TS_01.star 300\n", "tomogram table"),
        ("data_particles\n\nloop_\n_rlnTomoName #1\n_rlnCoordinateX #2\n_rlnCoordinateY #3\n_rlnCoordinateZ #4\nTS_01 1 2 3\n", "particle coordinates in tomograms"),
        ("data_sampling_general\n\n_rlnHealpixOrder 2\n\ndata_sampling_directions\n\nloop_\n_rlnAngleRot #1\n_rlnAngleTilt #2\n0 0\n45 30\n", "angular sampling"),
        ("data_\n\nloop_\n_rlnMicrographName #1\n_rlnDefocusU #2\n_rlnDefocusV #3\nm1.mrc 1 2\nm2.mrc 3 4\n", "micrograph table"),
    ],
)
def test_tables_that_are_not_particles_are_named(tmp_path, text, what):
    path = tmp_path / "t.star"
    path.write_text(text)
    with pytest.raises(InputError, match=what):
        read_star(path)
    assert what in describe(path)
