"""Issue 13: the fixes that error messages suggest exist (cryonb info --apix), and index files are bounded."""

import pickle

import numpy as np
import pytest

from cryonb.cli import main as cli
from cryonb.core.errors import InputError
from cryonb.core.io import describe, read_index

STAR = "data_particles\n\nloop_\n_rlnImageName #1\n_rlnOriginXAngst #2\n_rlnOriginYAngst #3\n1@stack.mrcs 1.0 2.0\n2@stack.mrcs 0.5 0.5\n"


def test_the_apix_hint_of_info_works(tmp_path, capsys):
    star = tmp_path / "shifts_in_angstrom.star"
    star.write_text(STAR)
    assert cli(["info", str(star)]) == 2
    err = capsys.readouterr().err
    assert "pixel size is unknown" in err and "--apix on the command line" in err
    assert cli(["info", "--apix", "1.5", str(star)]) == 0
    assert "pixel size 1.5 Å" in capsys.readouterr().out
    assert "pixel size 1.5 Å" in describe(star, apix=1.5)


@pytest.mark.parametrize("values, dtype, message", [
    ([0, 2**63], np.uint64, r"index 9223372036854775808 at position 1 is beyond the largest possible row number 2\*\*63 - 1"),
    ([3, 2**64 - 1], np.uint64, r"index 18446744073709551615 at position 1 is beyond"),
    ([0, 4, -2], np.int64, r"index -2 at position 2 is negative"),
])
def test_index_files_out_of_bounds_are_clear_errors(tmp_path, capsys, values, dtype, message):
    npy, pkl = tmp_path / "ind.npy", tmp_path / "ind.pkl"
    np.save(npy, np.array(values, dtype=dtype))
    pkl.write_bytes(pickle.dumps(np.array(values, dtype=dtype)))
    for path in (npy, pkl):
        with pytest.raises(InputError, match=rf"ind\.(npy|pkl): {message}.*Fix: pass 0-based particle row numbers"):
            read_index(path)
        assert cli(["info", str(path)]) == 2
        assert "Fix: pass 0-based" in capsys.readouterr().err


def test_good_index_files_still_read(tmp_path):
    np.save(tmp_path / "ind.npy", np.array([0, 5, 2**40], dtype=np.uint64))
    assert read_index(tmp_path / "ind.npy").tolist() == [0, 5, 2**40]
    assert "particle index array: 3 indices" in describe(tmp_path / "ind.npy")
