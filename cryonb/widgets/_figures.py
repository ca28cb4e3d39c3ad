"""Matplotlib figures (made without pyplot) as PNG bytes for image widgets."""

from __future__ import annotations

import io


def figure_png(figure) -> bytes:
    """The PNG of ``figure`` at its own dpi."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
