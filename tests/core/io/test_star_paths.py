"""Image names in a .star resolve as RELION lays out its projects, and a saved subset still finds its images.

RELION writes image names relative to its project folder (where it runs) and keeps each job's files
two folders down. A subset saved by cryonb keeps the names as RELION wrote them and records the folder
they resolve against (issue 14, item 1).
"""

import numpy as np
import pytest

from cryonb.core.errors import InputError
from cryonb.core.io.describe import describe
from cryonb.core.io.mrc import write_stack
from cryonb.core.io.star import read_star, write_blocks
from cryonb.core.particles import load_particles, save_selection
from cryonb.core.simulate import simulate

STACKS = ("Extract/job012/Movies/mic_001.mrcs", "Extract/job012/Movies/mic_002.mrcs")


@pytest.fixture
def project(tmp_path):
    """A RELION project: two micrograph stacks of 4 images and Select/job020/particles.star naming them."""
    import pandas as pd

    root = tmp_path / "project"
    particles = simulate("hinge", 8, D=16, progress=False).particles
    images = particles.images[:]
    for i, name in enumerate(STACKS):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_stack(root / name, images[4 * i : 4 * i + 4], apix=3.0)
    names = [f"{row % 4 + 1:06d}@{STACKS[row // 4]}" for row in range(8)]
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [3.0], "rlnImageSize": [16], "rlnVoltage": [300.0],
                           "rlnSphericalAberration": [2.7], "rlnAmplitudeContrast": [0.1]})
    table = pd.DataFrame({"rlnImageName": names, "rlnDefocusU": particles.ctf[:, 0], "rlnDefocusV": particles.ctf[:, 1],
                          "rlnDefocusAngle": particles.ctf[:, 2], "rlnAngleRot": np.arange(8) * 10.0,
                          "rlnAngleTilt": np.full(8, 90.0), "rlnAnglePsi": np.zeros(8), "rlnOpticsGroup": np.ones(8, int)})
    star = root / "Select/job020/particles.star"
    star.parent.mkdir(parents=True)
    write_blocks({"optics": optics, "particles": table}, star)
    return root, star, images


def test_names_relative_to_the_project_resolve_from_a_job_folder(project):
    root, star, images = project
    meta = read_star(star)
    assert meta.datadir == root.resolve() and meta.datadir_found.startswith("2 folders above the .star")
    assert [str(p) for p in dict.fromkeys(meta.image_paths)] == [str(root.resolve() / name) for name in STACKS]
    np.testing.assert_array_equal(load_particles(star).images[:], images)
    info = describe(star)
    assert f"images in 2 stack file(s), found in {root.resolve()} (2 folders above the .star, as in a RELION project)" in info


def test_a_saved_subset_keeps_relion_names_and_is_read_from_anywhere(project, tmp_path):
    root, star, images = project
    elsewhere = tmp_path / "analysis" / "curation"
    elsewhere.mkdir(parents=True)
    out = save_selection(load_particles(star).subset([6, 1, 3]), elsewhere / "kept")
    text = out["star"].read_text()
    assert text.splitlines()[0] == f"# cryonb datadir: {root.resolve()}"  # a comment: RELION skips it
    saved = read_star(out["star"])
    assert saved.table["rlnImageName"].tolist() == ["000003@" + STACKS[1], "000002@" + STACKS[0], "000004@" + STACKS[0]]  # as RELION wrote them
    assert saved.datadir == root.resolve() and saved.datadir_found == "the data folder recorded in the .star"
    np.testing.assert_array_equal(load_particles(out["star"]).images[:], images[[6, 1, 3]])
    assert f"found in {root.resolve()} (the data folder recorded in the .star)" in describe(out["star"])
    # RELION, run in its project folder, reads the names relative to it: so does datadir=
    np.testing.assert_array_equal(load_particles(out["star"], datadir=root).images[:], images[[6, 1, 3]])
    assert read_star(out["star"], datadir=root).datadir_found == "datadir="


def test_a_subset_saved_inside_the_project_resolves_upward_even_without_the_record(project):
    root, star, images = project
    (root / "cryonb").mkdir()
    out = save_selection(load_particles(star).subset([0, 5]), root / "cryonb" / "kept")
    stripped = root / "cryonb" / "plain.star"
    stripped.write_text("".join(line for line in out["star"].read_text().splitlines(keepends=True) if "cryonb datadir" not in line))
    assert read_star(stripped).datadir_found == "1 folder above the .star, as in a RELION project"
    np.testing.assert_array_equal(load_particles(stripped).images[:], images[[0, 5]])


def test_stacks_found_nowhere_name_the_path_looked_for(project, tmp_path):
    _, star, _ = project
    moved = tmp_path / "alone.star"
    moved.write_text(star.read_text())
    assert read_star(moved).datadir_found == "not found"
    assert "not found" in describe(moved)
    with pytest.raises(InputError, match=r"alone\.star|Extract/job012/Movies/mic_00[12]\.mrcs: image stack not found"):
        load_particles(moved)
