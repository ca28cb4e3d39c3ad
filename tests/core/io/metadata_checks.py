"""Checks shared by the parser fuzz tests."""

import numpy as np


def assert_well_formed(meta) -> None:
    """Poses, shifts and CTF parsed from any file are absent or finite arrays of the right shapes."""
    n = len(meta)
    for name, tail in (("rotations", (3, 3)), ("shifts", (2,)), ("ctf", (8,))):
        value = getattr(meta, name)
        assert value is None or (value.shape == (n, *tail) and np.isfinite(value).all())
