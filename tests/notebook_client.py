"""nbclient's NotebookClient, with a workaround for a missed wake-up that stalls widget notebooks.

While a cell's widgets send comm messages, nbclient's wait for the cell's reply on the shell channel can
miss the reply's arrival and sleep until the cell's whole timeout (jupyter/nbclient#312): on a loaded
machine, the CTF notebook's ``interact`` cell took its full 600 s in two runs of three. Waiting in
one-second slices finds the reply within a second; the cell's timeout still holds.

Where ``CRYONB_EXECUTED_NOTEBOOKS`` names a folder (``.ci/run``), each notebook that a test ran whole
is kept there (:func:`keep_executed`), and the docs build takes its outputs from there instead of
running it again (``docs/conf.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from queue import Empty
from time import monotonic

import nbclient

EXECUTED = "CRYONB_EXECUTED_NOTEBOOKS"
NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"


class NotebookClient(nbclient.NotebookClient):
    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        kc.shell_channel.get_msg = _in_slices(kc.shell_channel.get_msg)
        return kc


def _in_slices(get_msg, slice_s: float = 1.0):
    """``get_msg(timeout)`` waiting at most ``slice_s`` at a time, until a message or the timeout."""

    async def get(timeout: float | None = None):
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            left = slice_s if deadline is None else min(slice_s, max(0.0, deadline - monotonic()))
            try:
                return await get_msg(timeout=left)
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise

    return get


def keep_executed(nb, source: Path) -> None:
    """Keep ``nb``, the notebook ``source`` run top to bottom as it is committed, in ``$CRYONB_EXECUTED_NOTEBOOKS``.

    Written under its path below ``notebooks/``, without the cells' timings (which the docs build's
    cache would count as a change of the notebook).
    """
    import nbformat

    folder = os.environ.get(EXECUTED)
    if not folder:
        return
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    target = Path(folder) / Path(source).resolve().relative_to(NOTEBOOKS_DIR)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    nbformat.write(nb, partial)
    os.replace(partial, target)  # the docs build never reads half a notebook
