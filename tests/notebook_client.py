"""nbclient's NotebookClient, with a workaround for a missed wake-up that stalls widget notebooks.

While a cell's widgets send comm messages, nbclient's wait for the cell's reply on the shell channel can
miss the reply's arrival and sleep until the cell's whole timeout (jupyter/nbclient#312): on a loaded
machine, the CTF notebook's ``interact`` cell took its full 600 s in two runs of three. Waiting in
one-second slices finds the reply within a second; the cell's timeout still holds.
"""

from __future__ import annotations

from queue import Empty
from time import monotonic

import nbclient


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
