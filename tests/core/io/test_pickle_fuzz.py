"""Fuzzing the restricted unpickler: any bytes give a value or one InputError, within bounded memory.

Mutations of real cryoDRGN pickles (byte flips, truncations, insertions) and arbitrary opcode
streams. CRYONB_FUZZ_EXAMPLES=N runs it long (tests/conftest.py).
"""

import pickle
import tracemalloc

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cryonb.core.errors import InputError
from cryonb.core.io.pickles import load_pickle

ORACLES = ("cryodrgn/ctf1.pkl", "cryodrgn/pose.star.pkl", "cryodrgn/pose.cs.pkl")
PLAIN = pickle.dumps((np.arange(12, dtype=np.float32).reshape(3, 4), [1, 2, (3.0, "a")], {"k": None}), protocol=4)


LIMIT = 64 * 2**20  # bytes any input may make the unpickler build


def load_bounded(tmp_path, data: bytes):
    """load_pickle on ``data``: (loaded, peak bytes traced); anything but InputError fails the test."""
    path = tmp_path / "fuzz.pkl"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        load_pickle(path)
        ok = True
    except InputError:
        ok = False
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return ok, peak


def mutate(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for kind, pos, value in edits:
        i = pos % (len(b) + 1)
        if kind == 0 and b:
            b[min(i, len(b) - 1)] = value
        elif kind == 1:
            b.insert(i, value)
        else:
            del b[i:]
    return bytes(b)


EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6)


@given(edits=EDITS, which=st.integers(0, len(ORACLES)))
def test_mutated_pickles_load_or_fail_cleanly(tmp_path_factory, real_data, edits, which):
    data = PLAIN if which == len(ORACLES) else (real_data / ORACLES[which]).read_bytes()
    mutated = mutate(data, edits)
    _, peak = load_bounded(tmp_path_factory.mktemp("p"), mutated)
    assert peak < LIMIT, f"{peak} bytes built from a {len(mutated)}-byte pickle"


@given(body=st.binary(max_size=300))
def test_arbitrary_opcode_streams_load_or_fail_cleanly(tmp_path_factory, body):
    _, peak = load_bounded(tmp_path_factory.mktemp("p"), b"\x80\x04" + body + b".")
    assert peak < LIMIT, f"{peak} bytes built from a {len(body) + 3}-byte pickle"


def test_the_unmutated_inputs_load(tmp_path, real_data):
    for data in [PLAIN, *((real_data / name).read_bytes() for name in ORACLES)]:
        ok, peak = load_bounded(tmp_path, data)
        assert ok and peak < LIMIT
