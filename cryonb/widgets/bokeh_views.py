"""Pieces the widgets' Bokeh plots share: BokehJS and Panel's stylesheets served without internet,
HoloViews hooks for the explorer's plots, and the padded ranges of their axes."""

from __future__ import annotations

import numpy as np

PADDING = 0.05  # of the data's own range, on each side of the plot


def padded_range(values, padding: float = PADDING) -> tuple[float, float]:
    """(low, high) of ``values`` widened by ``padding`` of their range on each side.

    The plot's axes run over this range, so that particles at the edge are drawn whole and a
    lasso can be drawn around them. A single value gets a range of ±``padding`` of its size (±0.5 at 0).
    """
    values = np.asarray(values, dtype=np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    span = high - low
    pad = padding * span if span > 0 else (padding * abs(low) or 0.5)
    return low - pad, high + pad


_PAGES_LOADED: set[str | None] = set()  # the browser pages (kernel client sessions) BokehJS was loaded into


def load_bokehjs() -> None:
    """Load BokehJS into the page that runs this cell, from the Python package: no internet needed.

    Once per page, not per kernel: a page reloaded, or a second page on the same kernel, has lost
    BokehJS, and a plot shown there without it stays blank. A page is the client session in the
    header of the request the kernel is answering.
    """
    import holoviews as hv

    page = _client_session()
    if page not in _PAGES_LOADED:
        hv.extension("bokeh", inline=True)
        _PAGES_LOADED.add(page)


def _client_session() -> str | None:
    """The session id of the frontend whose request is being answered, or None outside a kernel."""
    from IPython import get_ipython

    kernel = getattr(get_ipython(), "kernel", None)
    parent = kernel.get_parent() if kernel is not None and hasattr(kernel, "get_parent") else None
    return (parent or {}).get("header", {}).get("session")


def plot_widget(pane):
    """An ipywidget (jupyter_bokeh) of a Panel ``pane`` whose stylesheets are inline, not on a CDN.

    Panel gives its models stylesheets imported from cdn.holoviz.org, which a browser without
    internet (clusters, Binder) cannot fetch; ``pn.ipywidget`` ignores ``pn.config.inline``. A
    pre-processing hook of the pane replaces every such stylesheet that Panel ships with its text,
    on the first render and on every later one.
    """
    import panel as pn

    pane._hooks = [*pane._hooks, _inline_stylesheets]
    return pn.ipywidget(pane)


def _inline_stylesheets(viewable, root) -> None:
    from bokeh.models import UIElement
    from panel.io.notebook import patch_inline_stylesheets

    for model in root.select({"type": UIElement}):
        patch_inline_stylesheets(model)


def no_wheel_zoom(plot, element) -> None:
    """HoloViews hook: no scroll tool active (Bokeh's "auto" would make wheel-zoom take the notebook's scrolling)."""
    plot.state.toolbar.active_scroll = None


# BokehJS (3.9) ignores a lasso or box pressed down outside the plot's frame, over an axis, and its
# lasso then fails an assertion on every move of the drag ("Assertion failed" in the console, the
# selection lost). Once the plot is laid out, this moves such a start onto the frame's nearest edge,
# so that a lasso drawn from the margin around edge particles selects them.
_CLIP_START_JS = """
for (const view of Bokeh.index.all_views()) {
  if (!tools.includes(view.model) || view._cryonb_clipped) continue;
  view._cryonb_clipped = true;
  const pan_start = view._pan_start.bind(view), pan = view._pan.bind(view), pan_end = view._pan_end.bind(view);
  view._pan_start = (ev) => {
    const [sx, sy] = view.plot_view.frame.bbox.clip(ev.sx, ev.sy);
    pan_start(Object.assign(Object.create(Object.getPrototypeOf(ev)), ev, {sx, sy}));
  };
  view._pan = (ev) => { if (view._is_selecting) pan(ev); };
  view._pan_end = (ev) => { if (view._is_selecting) pan_end(ev); };
}
"""


def selections_start_in_margins(plot, element) -> None:
    """HoloViews hook: lasso and box selections may start in the axis margins (see ``_CLIP_START_JS``)."""
    from bokeh.models import BoxSelectTool, CustomJS, LassoSelectTool

    figure = plot.state
    tools = [tool for tool in figure.tools if isinstance(tool, (LassoSelectTool, BoxSelectTool))]
    if not tools or any(getattr(c, "name", None) == "cryonb-clip-start" for c in figure.js_property_callbacks.get("change:inner_width", [])):
        return
    figure.js_on_change("inner_width", CustomJS(args={"tools": tools}, code=_CLIP_START_JS, name="cryonb-clip-start"))
