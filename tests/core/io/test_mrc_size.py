"""A header that describes less data than the file holds is said, never silently half-read."""

import numpy as np
import pytest

from cryonb.cli import main as cli
from cryonb.core.errors import InputError
from cryonb.core.io.mrc import open_stack, read_header, read_map, write_map, write_stack
from cryonb.core.particles import load_particles


def _set_nz(path, nz):
    with open(path, "r+b") as f:
        f.seek(8)  # NZ, the third int32 of the header
        f.write(np.int32(nz).tobytes())


def test_header_with_fewer_sections_than_the_data_is_refused(tmp_path, capsys):
    path = tmp_path / "stack.mrcs"
    write_stack(path, np.arange(6, dtype=np.float32)[:, None, None] * np.ones((1, 8, 8), np.float32), apix=1.0)
    _set_nz(path, 3)
    for read in (read_header, open_stack, load_particles):
        with pytest.raises(InputError, match=r"header says 3 sections \(images\) but the file holds data for 6: .* 3 sections would be ignored") as info:
            read(path)
        assert str(path) in str(info.value)
    assert cli(["info", str(path)]) == 2
    assert "NZ in the header is too small" in capsys.readouterr().err


def test_map_with_fewer_sections_in_the_header_is_refused(tmp_path):
    path = tmp_path / "map.mrc"
    write_map(path, np.zeros((8, 8, 8), np.float32), apix=2.0)
    _set_nz(path, 4)
    with pytest.raises(InputError, match="says 4 sections .* data for 8"):
        read_map(path)


def test_trailing_bytes_that_are_not_sections_are_ignored_with_a_warning(tmp_path):
    path = tmp_path / "stack.mrcs"
    write_stack(path, np.ones((2, 8, 8), np.float32), apix=1.0)
    with open(path, "ab") as f:
        f.write(b"\0" * 10)
    with pytest.warns(UserWarning, match=r"stack.mrcs: 10 bytes after the data block .* are ignored"):
        stack = open_stack(path)
    assert len(stack) == 2
    stack.close()
