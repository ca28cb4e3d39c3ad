import os
import pickle

import numpy as np
import pytest

from cryonb.core.errors import InputError
from cryonb.core.io.pickles import (
    load_pickle,
    read_cryodrgn_ctf,
    read_cryodrgn_poses,
    read_index,
    write_index_npy,
    write_index_pickle,
)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo owned > /dev/null",))


def test_malicious_pickle_is_refused(tmp_path):
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(InputError, match=r"evil\.pkl: refusing to unpickle posix\.system"):
        load_pickle(tmp_path / "evil.pkl")
    (tmp_path / "obj.pkl").write_bytes(pickle.dumps({"a": 1}))  # a dict is built without find_class
    assert load_pickle(tmp_path / "obj.pkl") == {"a": 1}
    (tmp_path / "cls.pkl").write_bytes(pickle.dumps(InputError))
    with pytest.raises(InputError, match="refusing to unpickle cryonb.core.errors.InputError"):
        load_pickle(tmp_path / "cls.pkl")


@pytest.mark.parametrize("name", ["ctf1.pkl", "ctf2.pkl", "sta_ctf.pkl", "pose.star.pkl", "pose.cs.pkl", "sta_pose.pkl"])
def test_real_cryodrgn_pickles_load(real_data, name):
    with open(real_data / "cryodrgn" / name, "rb") as f:
        expected = pickle.load(f)  # trusted oracle
    got = load_pickle(real_data / "cryodrgn" / name)
    for a, b in zip(got if isinstance(got, tuple) else [got], expected if isinstance(expected, tuple) else [expected]):
        np.testing.assert_array_equal(a, b)


def test_cryodrgn_ctf_and_poses(real_data):
    ctf, D, apix = read_cryodrgn_ctf(real_data / "cryodrgn/sta_ctf.pkl")
    assert ctf.shape == (219, 8) and (D, apix) == (512, 1.82)
    np.testing.assert_array_equal(ctf[:, 7], 0)
    rot, shifts = read_cryodrgn_poses(real_data / "cryodrgn/pose.star.pkl", 300)
    assert rot.dtype == np.float32 and shifts[0].tolist() == pytest.approx([-0.14063, -0.04688], abs=1e-6)


def test_rotations_only_pose_pickle(tmp_path):
    with open(tmp_path / "rot.pkl", "wb") as f:
        pickle.dump(np.eye(3)[None].repeat(4, 0), f)
    rot, shifts = read_cryodrgn_poses(tmp_path / "rot.pkl", 64)
    assert rot.shape == (4, 3, 3) and shifts is None


def test_bad_ctf_pickle(tmp_path):
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump(np.ones((3, 5), np.float32), f)
    with pytest.raises(InputError, match=r"expected a numeric \(N, 9\) CTF array"):
        read_cryodrgn_ctf(tmp_path / "bad.pkl")


def test_index_files_round_trip(tmp_path):
    indices = np.array([7, 0, 3, 100_000])
    write_index_pickle(indices, tmp_path / "sel.ind.pkl")
    write_index_npy(indices, tmp_path / "sel.ind.npy")
    for path in (tmp_path / "sel.ind.pkl", tmp_path / "sel.ind.npy"):
        back = read_index(path)
        assert back.dtype == np.int64 and back.tolist() == indices.tolist()
