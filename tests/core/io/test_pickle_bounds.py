"""Corrupt, truncated, foreign and expanding pickles give a clear InputError, in bounded memory."""

import pickle
import zipfile

import numpy as np
import pytest

from cryonb.cli import main as cli
from cryonb.core.errors import InputError
from cryonb.core.io import describe
from cryonb.core.io.pickles import MAX_DEPTH, load_pickle, read_cryodrgn_ctf, read_cryodrgn_poses, read_index
from cryonb.core.particles import load_particles


def _shared_lists(depth: int, width: int) -> bytes:
    """A tiny protocol-2 pickle of lists that each hold ``width`` references to the previous one."""
    data = bytearray(b"\x80\x02]q\x00")  # PROTO 2, EMPTY_LIST, BINPUT 0
    for i in range(1, depth + 1):
        data += b"(" + (b"h" + bytes([i - 1])) * width + b"l" + b"q" + bytes([i])  # MARK, BINGET..., LIST, BINPUT
    return bytes(data + b".")


class _Reduce:
    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _torch_like_zip(tmp_path):
    path = tmp_path / "weights.pkl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"epoch": 1}))
    return path


@pytest.mark.parametrize(
    "make, what",
    [
        (lambda t: _write(t, "junk.pkl", b"\x00\xffnot a pickle at all" * 5), "not a readable pickle"),
        (lambda t: _write(t, "cut.pkl", pickle.dumps(np.ones((50, 9)), protocol=4)[:300]), "not a readable pickle|cannot be read"),
        (lambda t: _write(t, "x.pkl", pickle.dumps(np.ones(3), protocol=4)[:1]), "not a readable pickle|cannot be read"),
        (lambda t: _write(t, "empty.pkl", b""), "empty"),
        (lambda t: (np.save(t / "ind.npy", np.arange(4)), (t / "ind.npy").rename(t / "ind.pkl"), t / "ind.pkl")[-1], "numpy .npy file, not a pickle"),
        (_torch_like_zip, "PyTorch checkpoint"),
        (lambda t: _write(t, "deep.pkl", _shared_lists(40, 2)), f"nests containers more than {MAX_DEPTH} deep"),
        (lambda t: _write(t, "wide.pkl", _shared_lists(4, 100)), "expand to more than 1,000,000 elements"),
        (lambda t: _write(t, "big.pkl", pickle.dumps(_Reduce(np._core.multiarray._reconstruct, (np.ndarray, (10**6, 10**6), b"b")))), "more than the whole file holds"),
        (lambda t: _write(t, "call.pkl", pickle.dumps(_Reduce(np.ndarray, ((10**6, 10**6),)))), "not callable"),
        (lambda t: _write(t, "objs.pkl", pickle.dumps(np.array([[1], "a"], dtype=object))), "array of Python objects"),
    ],
)
def test_bad_pickles_are_input_errors_everywhere(tmp_path, capsys, make, what):
    path = make(tmp_path)
    for read in (load_pickle, read_cryodrgn_ctf, read_index, describe, lambda p: read_cryodrgn_poses(p, 64)):
        with pytest.raises(InputError, match=what) as info:
            read(path)
        assert str(path) in str(info.value)
    assert cli(["info", str(path)]) == 2
    assert path.name in capsys.readouterr().err


def test_bad_pickles_through_poses_and_ctf_options(real_data, tmp_path, capsys):
    junk = _write(tmp_path, "junk.pkl", b"\x80\x04junk")
    stack = real_data / "cryodrgn/relion31.mrcs"
    for option in ("poses", "ctf"):
        with pytest.raises(InputError, match="junk.pkl: is not a readable pickle"):
            load_particles(stack, **{option: junk})
    assert cli(["backproject", str(stack), "-o", str(tmp_path / "m.mrc"), "--poses", str(junk)]) == 2
    assert "junk.pkl" in capsys.readouterr().err


def test_real_pickles_and_moderate_nesting_still_load(real_data, tmp_path):
    assert load_pickle(real_data / "cryodrgn/ctf2.pkl").shape == (2019, 9)
    nested = load_pickle(_write(tmp_path, "ok.pkl", _shared_lists(10, 2)))  # 1024 leaves
    assert len(nested) == 2 and nested[0] is nested[1]
