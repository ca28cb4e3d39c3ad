"""A subset written back keeps the file's own ``# version`` line (RELION 5 stays RELION 5)."""

from cryonb.core.io.star import read_star, write_star_subset
from cryonb.core.particles import load_particles, save_selection


def test_relion5_subset_keeps_its_version_line(real_data, tmp_path):
    src = real_data / "cryodrgn/relion5.star"
    out = write_star_subset(src, [3, 0], tmp_path / "sub.star")
    assert out.read_text().splitlines()[0] == "# version 50001"
    back = read_star(out)
    assert back.version == "5.0" and back.version_line == "# version 50001" and len(back) == 2


def test_save_selection_of_relion5_keeps_it_too(real_data, tmp_path):
    particles = load_particles(real_data / "cryodrgn/relion5.star", images=False)
    written = save_selection(particles.subset([1, 2, 5]), tmp_path / "picked")
    assert written["star"].read_text().startswith("# version 50001\n")
    assert read_star(written["star"]).version == "5.0"


def test_a_version_line_is_kept_as_written_and_none_is_invented(real_data, tmp_path):
    text = (real_data / "cryodrgn/relion31.star").read_text()
    custom = tmp_path / "v.star"
    custom.write_text("\n# version 30001\n" + text)
    assert write_star_subset(custom, [0], tmp_path / "a.star").read_text().startswith("# version 30001\n")
    plain = write_star_subset(real_data / "cryodrgn/empiar_10076_7.star", [0], tmp_path / "b.star")
    assert "# version" not in plain.read_text()
