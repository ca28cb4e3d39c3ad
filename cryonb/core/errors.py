"""Errors cryonb raises on bad input: each names the file, the problem and the fix."""

from __future__ import annotations

import os


class CryonbError(Exception):
    """Base class of every error cryonb raises on purpose."""


class InputError(CryonbError, ValueError):
    """A file or argument that cryonb cannot use as it is.

    The message reads ``<path>: <problem>. Fix: <fix>`` so that a user sees at once
    which file is wrong, why, and what to do about it.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str, fix: str | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path else ""
        hint = f" Fix: {fix}" if fix else ""
        super().__init__(f"{where}{problem.rstrip('.')}.{hint}")
