import pytest

from cryonb.core.errors import InputError
from cryonb.core.io import describe


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mrcfile/EMD-3001.map", ["MRC map: (z, y, x) = (73, 25, 43)", "permuted axes", "anisotropic"]),
        ("relion/ref_model.mrc", ["MRC map: (z, y, x) = (100, 100, 100)", "pixel size 3.54 Å"]),
        ("cryodrgn/empiar_10076_7.mrc", ["MRC image stack: 7 images of 320x320", "pixel size unset"]),
        ("cryodrgn/relion31.mrcs", ["5 images of 256x256", "'MAP ' id", "placeholder"]),
        ("cryodrgn/relion31.6opticsgroups.star", ["RELION 3.1 particle STAR: 139 particles", "6 optics group(s)", "poses: yes"]),
        ("cryodrgn/relion5.star", ["RELION 5.0", "box 448"]),
        ("cryodrgn/FinalRefinement-OriginalParticles-PfCRT.star", ["CTF: incomplete or none", "1 not found"]),
        ("starfile/postprocess.star", ["without a particle table", "data_fsc: 49 rows x 7 columns"]),
        ("cryodrgn/cryosparc_P12_J24_001_particles.cs", ["2019 rows, pixel size 2.95 Å, box 180", "alignments3D/: split"]),
        ("cryosparc_tools/4k_dataset.cs", ["0 rows", "location/: micrograph_uid"]),
        ("cryodrgn/ctf2.pkl", ["cryoDRGN CTF parameters: 2019 particles, D=180, Apix=2.95 Å"]),
        ("cryodrgn/pose.star.pkl", ["cryoDRGN poses", "(5, 3, 3), (5, 2)"]),
    ],
)
def test_describe_real_files(real_data, name, expected):
    text = describe(real_data / name)
    for piece in expected:
        assert piece in text


def test_describe_unknown_or_missing(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="unknown file type"):
        describe(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="file not found"):
        describe(tmp_path / "absent.mrc")
