"""A read-only page of a shared bundle, for people without Jupyter: one HTML file that works offline.

It shows the latent scatter (a random subsample, zoomable: Bokeh, its JavaScript inline), each
cluster's map as central sections and projections (matplotlib PNGs), and an isosurface of one
map in NGL. NGL is the copy that nglview installs for the classic notebook (an AMD module), run
inline with a stand-in for its one import; if it cannot be found the page says so and shows the rest.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

import numpy as np

from cryonb.core.share import open_bundle
from cryonb.core.share.preview import preview_volumes

from ._figures import figure_png

MAX_CLUSTER_MAPS = 12


def write_page(bundle, out: str | os.PathLike | None = None, *, points: int = 20_000, box: int = 64, seed: int = 0) -> Path:
    """Write ``index.html`` in the bundle (or at ``out``) and return its path.

    ``bundle``: a bundle folder or an opened :class:`~cryonb.core.share.Bundle`. ``points``: the
    most particles drawn in the scatter; ``box``: the maps' box (their low frequencies only).
    """
    from cryonb.core.io.atomic import atomic_write

    from .volume_viewer import mrc_bytes

    bundle = bundle if hasattr(bundle, "run") else open_bundle(bundle)
    out = Path(out) if out is not None else bundle.path / "index.html"
    run, m = bundle.run, bundle.manifest
    labels = bundle.clusters
    groups, latents = _cluster_latents(run.z, labels)
    maps, apix = preview_volumes(run, latents, box=box)
    resources, scatter_script, scatter_div = _scatter(bundle, points, seed)
    panels = "\n".join(
        f'<figure class="cluster"><img alt="{html.escape(name)}" src="data:image/png;base64,{_png(_sections(volume, name))}">'
        f"</figure>" for name, volume in zip(groups, maps))
    ngl = _ngl_script()
    biggest = int(np.argmax([count for count in _counts(labels, len(run.z))])) if labels is not None else 0
    mrc = base64.b64encode(mrc_bytes(maps[biggest], apix)).decode() if ngl else ""
    title = html.escape(m["title"])

    ngl_block = (f'<div id="ngl" class="ngl" data-ngl="pending"></div>'
                 f'<p class="note">{html.escape(groups[biggest])}: isosurface at mean + 2σ, {maps.shape[-1]}³ voxels of {apix:.3g} Å. '
                 f"Drag to turn, scroll to zoom.</p>" if ngl else
                 '<p class="note" id="ngl-missing">No 3D view: nglview\'s NGL script was not found where this page was written.</p>')
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
{resources}
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }}
.note {{ color: #555; font-size: 0.9em; }} figure.cluster {{ display: inline-block; margin: 6px; }}
figure.cluster img {{ width: 520px; }} .ngl {{ width: 520px; height: 420px; border: 1px solid #ccc; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{m['n_particles']:,} particles, latent space of {m['zdim']} dimensions, maps of {m['box']}³ voxels at {m['apix']:g} Å;
written by {html.escape(m['written_by'])} on {html.escape(m['created'])}. A read-only view: the bundle's
<code>explore.ipynb</code> selects particles and generates maps at any latent.</p>
<h2>Latent space</h2>
{scatter_div}
{scatter_script}
<h2>Maps of the clusters</h2>
<p class="note">Each map is decoded at the latent of the particle nearest its cluster's mean: central sections
(top) and projections (bottom) along z, y and x; low frequencies only ({maps.shape[-1]}³ voxels of {apix:.3g} Å).</p>
{panels}
<h2>One map in 3D</h2>
{ngl_block}
{_ngl_loader(ngl, mrc) if ngl else ""}
</body></html>
"""
    with atomic_write(out, "w") as f:
        f.write(page)
    return out


def _counts(labels, n):
    return np.bincount(np.unique(labels, return_inverse=True)[1].reshape(-1)) if labels is not None else [n]


def _cluster_latents(z: np.ndarray, labels) -> tuple[list[str], np.ndarray]:
    """A name and a latent per cluster (the member nearest the cluster's mean), largest clusters first."""
    if labels is None:
        centre = np.argmin(np.linalg.norm(z - z.mean(0), axis=1))
        return [f"all {len(z):,} particles"], z[[centre]]
    names, rows = [], []
    values, counts = np.unique(labels, return_counts=True)
    for value, count in sorted(zip(values, counts), key=lambda vc: -vc[1])[:MAX_CLUSTER_MAPS]:
        members = np.flatnonzero(labels == value)
        nearest = members[np.argmin(np.linalg.norm(z[members] - z[members].mean(0), axis=1))]
        names.append(f"cluster {value} ({count:,} particles)")
        rows.append(nearest)
    return names, z[rows]


def _scatter(bundle, points: int, seed: int) -> tuple[str, str, str]:
    """BokehJS inline (what this plot needs only: no extension a notebook library registered, which
    Bokeh would name by a relative URL), the plot's script and its div."""
    import colorcet
    from bokeh.embed import components
    from bokeh.embed.bundle import bundle_for_objs_and_resources
    from bokeh.resources import INLINE
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    from .bokeh_views import padded_range
    from .latent_explorer import embedding

    z = bundle.run.z
    coords = bundle.coords if bundle.coords is not None else embedding(z, "pca")
    n = len(z)
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(n, points, replace=False)) if n > points else np.arange(n)
    what = f"all {n:,} particles" if len(shown) == n else f"{len(shown):,} of {n:,} particles, drawn at random"
    plot = figure(width=640, height=480, title=what, tools="pan,wheel_zoom,box_zoom,reset,save", active_drag="box_zoom",
                  x_range=padded_range(coords[:, 0]), y_range=padded_range(coords[:, 1]), output_backend="webgl")
    labels = bundle.clusters
    size = 6 if len(shown) <= 2000 else 3
    if labels is None:
        plot.scatter(coords[shown, 0], coords[shown, 1], size=size, alpha=0.5, color="#3b6ea5")
    else:
        palette = colorcet.palette["glasbey_category10"]
        for i, value in enumerate(np.unique(labels)):
            rows = shown[labels[shown] == value]
            source = ColumnDataSource({"x": coords[rows, 0], "y": coords[rows, 1]})
            plot.scatter("x", "y", source=source, size=size, alpha=0.6, color=palette[i % len(palette)],
                         legend_label=f"cluster {value}")
        plot.legend.click_policy = "hide"
        plot.legend.location = "top_right"
    plot.toolbar.active_scroll = None  # scrolling the page over the plot scrolls the page
    script, div = components(plot)
    return bundle_for_objs_and_resources([plot], INLINE).scripts(), script, div


def _sections(volume: np.ndarray, name: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4.6), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    c = volume.shape[0] // 2
    sections = [volume[c], volume[:, c], volume[:, :, c]]
    projections = [volume.sum(0), volume.sum(1), volume.sum(2)]
    for i, (image, title) in enumerate(zip(sections + projections, ["section z", "section y", "section x",
                                                                      "projection z", "projection y", "projection x"])):
        axes = figure.add_subplot(2, 3, i + 1)
        axes.imshow(image, cmap="gray", origin="lower")
        axes.set_title(title, fontsize=9)
        axes.set_axis_off()
    figure.suptitle(name, fontsize=11)
    return figure


def _png(figure) -> str:
    return base64.b64encode(figure_png(figure)).decode()


_EXPORTS = re.compile(r"var __webpack_exports__=__webpack_require__\((\d+)\);return __webpack_exports__")
_NGL_MODULE = re.compile(r"const NGL=__webpack_require__\((\d+)\)")
_PUBLIC_PATH = 'if(!e)throw new Error("Automatic publicPath is not supported in this browser");'


def ngl_source() -> Path | None:
    """nglview's classic-notebook bundle (``nglview-js-widgets/index.js``), which holds NGL, or None."""
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("nbextensions"):
        path = Path(folder) / "nglview-js-widgets" / "index.js"
        if path.is_file():
            return path
    return None


def _ngl_script() -> str | None:
    """nglview's bundle made to run inline and hand NGL to the page (``window.cryonbNGL``), or None."""
    path = ngl_source()
    if path is None:
        return None
    text = path.read_text(encoding="utf-8")
    module, exports = _NGL_MODULE.search(text), _EXPORTS.search(text)
    if module is None or exports is None:
        return None
    text = text.replace(exports.group(0), f"var __webpack_exports__=__webpack_require__({exports.group(1)});"
                                          f"__webpack_exports__.NGL=__webpack_require__({module.group(1)});return __webpack_exports__")
    text = text.replace(_PUBLIC_PATH, 'if(!e)e="./";')  # inline: no script URL to take the path from
    text = re.sub(r"//# sourceMappingURL=\S+", "", text).replace("</script", "<\\/script")
    # The bundle is an AMD module that imports the widget base classes: stand-ins suffice to reach NGL.
    return ("(function(){var base={DOMWidgetModel:class{defaults(){return {};}},DOMWidgetView:class{}};"
            "var define=function(deps,factory){window.cryonbNGL=factory(base).NGL;};define.amd=true;\n"
            f"{text}\n}})();")


def _ngl_loader(ngl: str, mrc: str) -> str:
    return f"""<script>{ngl}</script>
<script>
(function() {{
  const element = document.getElementById("ngl");
  try {{
    const NGL = window.cryonbNGL;
    const stage = new NGL.Stage(element, {{backgroundColor: "white"}});
    const bytes = Uint8Array.from(atob({json.dumps(mrc)}), (c) => c.charCodeAt(0));
    stage.loadFile(new Blob([bytes]), {{ext: "mrc"}}).then((component) => {{
      component.addRepresentation("surface", {{isolevelType: "sigma", isolevel: 2, color: "#8fb4d9"}});
      component.autoView();
      element.dataset.ngl = "ready";
    }}, (error) => {{ element.dataset.ngl = "failed: " + error; }});
  }} catch (error) {{
    element.dataset.ngl = "failed: " + error;
    element.textContent = "No 3D view: " + error;
  }}
}})();
</script>"""
