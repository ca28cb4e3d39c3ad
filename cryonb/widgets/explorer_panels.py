"""The latent explorer's tool panels: cluster toggles, named regions, the trajectory creator and more
views. Each is a thin ipywidgets view over the explorer's methods (which the notebook can call too).
"""

from __future__ import annotations

import html
import os
import warnings

import ipywidgets as w

from cryonb.core.analysis.graph import GraphGapWarning
from cryonb.core.analysis.regions import OPERATIONS
from cryonb.core.analysis.tour import ORDERS, PATHS
from cryonb.core.errors import InputError

WIDE = {"description_width": "initial"}


def _swatch(color: str) -> str:
    return f'<span style="display:inline-block;width:12px;height:12px;background:{color};border-radius:2px;vertical-align:middle"></span>'


NOTICE_COLOR = "#a04000"  # a notice: done, but the user should know how (e.g. a path that jumps gaps)


def _message(target: w.HTML, text: str, error: bool = False, notice: str = "") -> None:
    color = "#b00020" if error else "inherit"
    target.value = f'<div style="overflow-wrap:anywhere;line-height:1.4;color:{color}">{html.escape(text)}</div>'
    if notice:
        target.value += (f'<div class="cryonb-notice" style="overflow-wrap:anywhere;line-height:1.4;color:{NOTICE_COLOR}">'
                         f'&#9888; {html.escape(notice)}</div>')


def _guarded(action, message: w.HTML, done=None, notice=None):
    """Run ``action()``; show an InputError (or OSError) as a message instead of a traceback.
    ``done(result)``: the message on success; ``notice(result)``: a warning shown below it ("" for none).
    Any other error is a defect: told in the message too (a button's callback fails silently otherwise,
    its traceback only in JupyterLab's log), then raised."""
    def run(*_):
        try:
            result = action()
        except (InputError, OSError) as error:
            _message(message, str(error), error=True)
        except Exception as error:
            _message(message, f"{type(error).__name__}: {error} (an unexpected error in cryonb: please report it)", error=True)
            raise
        else:
            _message(message, done(result) if done else "", notice=notice(result) if notice else "")
    return run


# --- clusters ------------------------------------------------------------------------------------

def cluster_toggles(explorer) -> w.Widget:
    """A checkbox per k-means cluster, in its colour with its size: ticking selects the whole
    cluster (added to the selection), unticking takes it out. A toggle is on while every shown
    particle of its cluster is selected."""
    k = len(explorer.clusters.centers)
    boxes = []
    for c in range(k):
        box = w.Checkbox(value=False, description=f"{c}", indent=False, layout=w.Layout(width="auto"))
        box.add_class("cryonb-explorer-cluster")
        boxes.append(box)
    swatches = [w.HTML(_swatch(explorer.cluster_color(c))) for c in range(k)]
    syncing = [False]

    def toggled(change, c):
        if not syncing[0]:
            explorer.select_clusters([c], mode="add" if change["new"] else "remove")

    for c, box in enumerate(boxes):
        box.observe(lambda change, c=c: toggled(change, c), "value")

    def sync(_=None):
        states = explorer.cluster_selected()
        shown = explorer.clusters.labels[explorer.working]
        syncing[0] = True
        try:
            for c, box in enumerate(boxes):
                box.value = states.get(c, False)
                box.disabled = c not in states
                box.description = f"{c} ({(shown == c).sum():,})"
        finally:
            syncing[0] = False

    explorer.on_selection(sync)
    sync()
    items = [w.HBox([swatch, box], layout=w.Layout(align_items="center", margin="0 8px 0 0")) for swatch, box in zip(swatches, boxes)]
    row = w.HBox([w.HTML("<b>clusters</b>&nbsp;"), *items], layout=w.Layout(flex_flow="row wrap", align_items="center",
                                                                          width=f"{explorer._size[0]}px"))
    row.add_class("cryonb-explorer-clusters")
    explorer._cluster_boxes = boxes
    return row


# --- regions -------------------------------------------------------------------------------------

def regions_panel(explorer) -> w.Widget:
    """Store the selection under a name, load a region from an index file or a .star subset,
    combine regions, and for each: show it, select it, save it or remove it."""
    message = w.HTML()
    message.add_class("cryonb-explorer-regions-message")
    name = w.Text(placeholder="name (optional)", layout=w.Layout(width="200px"))
    name.add_class("cryonb-explorer-region-name")
    store = w.Button(description="Store selection", icon="bookmark", layout=w.Layout(width="auto"))
    store.on_click(_guarded(lambda: explorer.store_region(name.value.strip() or None), message,
                            lambda n: f"stored {len(explorer.regions[n]):,} particles as {n!r}"))
    path = w.Text(placeholder="index .pkl / .npy / .txt or a .star subset", layout=w.Layout(width="340px"))
    path.add_class("cryonb-explorer-region-path")
    load = w.Button(description="Load", icon="upload", layout=w.Layout(width="auto"))
    load.on_click(_guarded(lambda: explorer.load_region(os.path.expanduser(path.value.strip())), message,
                           lambda n: f"loaded {len(explorer.regions[n]):,} particles as {n!r}"))
    operation = w.Dropdown(options=OPERATIONS, value="union", layout=w.Layout(width="120px"))
    chosen = w.SelectMultiple(options=[], rows=3, layout=w.Layout(width="200px"))
    combined = w.Text(placeholder="new name", layout=w.Layout(width="160px"))
    combine = w.Button(description="Combine", icon="object-group", layout=w.Layout(width="auto"))
    combine.on_click(_guarded(lambda: explorer.combine_regions(combined.value.strip() or explorer.regions.unique_name(operation.value),
                                                              operation.value, list(chosen.value)), message,
                              lambda n: f"{n!r}: {len(explorer.regions[n]):,} particles"))
    for part, css in [(operation, "operation"), (chosen, "chosen"), (combine, "combine"), (combined, "combined")]:
        part.add_class(f"cryonb-explorer-region-{css}")
    rows = w.VBox()
    rows.add_class("cryonb-explorer-region-list")

    def region_row(region: str) -> w.Widget:
        shown = w.Checkbox(value=region in explorer.shown_regions, indent=False, layout=w.Layout(width="24px"))
        shown.observe(lambda change: explorer.show_regions(
            [n for n in explorer.regions.names if (n == region and change["new"]) or (n != region and n in explorer.shown_regions)]), "value")
        label = w.HTML(f"{_swatch(explorer.region_color(region))} <b>{html.escape(region)}</b> "
                       f"({len(explorer.regions[region]):,})", layout=w.Layout(width="220px"))
        mode = w.Dropdown(options=("replace", "add", "remove", "within"), value="replace", layout=w.Layout(width="95px"))
        select = w.Button(description="Select", layout=w.Layout(width="auto"))
        select.on_click(_guarded(lambda: explorer.select_region(region, mode.value), message))
        prefix = w.Text(value=_file_stem(region), layout=w.Layout(width="150px"))
        save = w.Button(description="Save", icon="save", layout=w.Layout(width="auto"))
        save.on_click(_guarded(lambda: explorer.save_region(region, os.path.expanduser(prefix.value.strip())), message,
                               lambda written: f"wrote {region!r} to " + ", ".join(str(p) for p in written.values())))
        drop = w.Button(description="Remove", icon="trash", layout=w.Layout(width="auto"))
        drop.on_click(_guarded(lambda: explorer.remove_region(region), message))
        row = w.HBox([shown, label, mode, select, prefix, save, drop], layout=w.Layout(align_items="center"))
        row.add_class("cryonb-explorer-region")
        return row

    def refresh():
        rows.children = [region_row(region) for region in explorer.regions.names] or [w.HTML("<i>no regions yet</i>")]
        chosen.options = explorer.regions.names

    explorer.on_regions(refresh)
    refresh()
    box = w.VBox([w.HBox([name, store]), w.HBox([path, load]), rows,
                  w.HBox([operation, chosen, combined, combine], layout=w.Layout(align_items="flex-start")), message])
    box.add_class("cryonb-explorer-regions")
    return box


def _file_stem(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


# --- trajectory ----------------------------------------------------------------------------------

def trajectory_panel(explorer) -> w.Widget:
    """Anchors (clicked particles or the k-means centres), their order and path, Make path,
    export (z-path.txt and maps) and a player of its maps."""
    message = w.HTML()
    message.add_class("cryonb-explorer-trajectory-message")
    anchors_label = w.HTML()
    on_click = w.Checkbox(value=explorer.anchor_on_click, description="a click adds an anchor", indent=False)
    on_click.observe(lambda change: setattr(explorer, "anchor_on_click", change["new"]), "value")
    add = w.Button(description="Add clicked", icon="plus", layout=w.Layout(width="auto"))
    add.on_click(_guarded(lambda: explorer.add_anchor(), message))
    centres = w.Button(description="k-means centres", icon="bullseye", layout=w.Layout(width="auto"),
                       disabled=explorer.clusters is None)
    centres.on_click(_guarded(explorer.anchors_from_centres, message))
    clear = w.Button(description="Clear", icon="times", layout=w.Layout(width="auto"))
    clear.on_click(_guarded(explorer.clear_anchors, message))
    order = w.ToggleButtons(options=ORDERS, value="given", description="order", style={**WIDE, "button_width": "80px"})
    path = w.ToggleButtons(options=PATHS, value="graph", description="path", style={**WIDE, "button_width": "80px"})
    frames = w.BoundedIntText(value=20, min=2, max=500, description="frames", style=WIDE, layout=w.Layout(width="130px"))
    make = w.Button(description="Make path", icon="route", button_style="info", layout=w.Layout(width="auto"))
    neighbours = w.BoundedIntText(value=10, min=1, max=200, description="graph neighbours", style=WIDE, layout=w.Layout(width="190px"))
    # Anchors in separate parts of the graph (well-separated clusters): jump the shortest gaps, add
    # neighbours until they join, or refuse (cryonb.core.analysis.graph_path's disconnected=).
    disconnected = w.Dropdown(options=[("jump the gaps", "bridge"), ("more neighbours", "grow"), ("refuse", "raise")],
                              value="bridge", description="separate parts", style=WIDE, layout=w.Layout(width="250px"))
    graph_kw = lambda: {"k": neighbours.value, "disconnected": disconnected.value} if path.value == "graph" else {}  # noqa: E731

    def make_path():
        with warnings.catch_warnings():  # shown in the panel, not in a log nobody reads
            warnings.simplefilter("ignore", GraphGapWarning)
            return explorer.make_trajectory(order.value, path.value, max(frames.value, len(explorer.anchors)), **graph_kw())

    def made(t) -> str:
        jumps = int(t.gaps.sum())
        return (f"{len(t.z)} latents through {len(t.anchors)} anchors"
                + (f"; {jumps} of them across gaps between separate parts of the graph (dashed orange on the plot)" if jumps else ""))

    make.on_click(_guarded(make_path, message, made, lambda t: explorer.trajectory_notice))
    outdir = w.Text(value="trajectory", description="folder", style=WIDE, layout=w.Layout(width="260px"))
    with_maps = w.Checkbox(value=getattr(explorer.run, "model", None) is not None, description="with maps", indent=False)
    export = w.Button(description="Export", icon="save", layout=w.Layout(width="auto"))
    export.on_click(_guarded(lambda: explorer.export_trajectory(os.path.expanduser(outdir.value.strip()), maps=with_maps.value), message,
                             lambda written: f"wrote {written['z']}" + (f" and {len(written['maps'])} maps" if written["maps"] else "")))
    player = w.VBox()
    play = w.Button(description="Play", icon="play", layout=w.Layout(width="auto"))
    play.on_click(_guarded(lambda: setattr(player, "children", (explorer.play_trajectory().widget,)), message))
    for part, css in [(add, "add"), (centres, "centres"), (clear, "clear"), (order, "order"), (path, "path"), (make, "make"),
                      (disconnected, "disconnected"),
                      (export, "export"), (play, "play"), (anchors_label, "anchors")]:
        part.add_class(f"cryonb-explorer-trajectory-{css}")

    def refresh():
        count = len(explorer.anchors)
        anchors_label.value = f"<b>{count}</b> anchor{'s' * (count != 1)}" + (": rows " + ", ".join(map(str, explorer.anchors[:12])) if count else "")
        anchors_label.value += " …" if count > 12 else ""
        make.disabled = count < 2
        export.disabled = play.disabled = explorer.trajectory is None

    explorer.on_regions(refresh)
    refresh()
    box = w.VBox([w.HBox([on_click, add, centres, clear]), anchors_label, w.HBox([order, path]),
                  w.HBox([frames, neighbours, disconnected, make]),
                  w.HBox([outdir, with_maps, export, play]), message, player])
    box.add_class("cryonb-explorer-trajectory")
    return box


# --- more views ----------------------------------------------------------------------------------

def views_panel(explorer) -> w.Widget:
    """Buttons that draw the pair grid of latent dimensions and the 3-D view of PC1-3 below them."""
    from .latent_views import PairGrid, Scatter3D

    out = w.VBox()
    message = w.HTML()
    grid = w.Button(description="Pair grid", icon="th", layout=w.Layout(width="auto"))
    grid.on_click(_guarded(lambda: setattr(out, "children", (PairGrid.of(explorer).widget,)), message))
    three = w.Button(description="3-D (PC1-3)", icon="cube", layout=w.Layout(width="auto"), disabled=explorer.run.z.shape[1] < 3)
    three.on_click(_guarded(lambda: setattr(out, "children", (Scatter3D.of(explorer).widget,)), message))
    grid.add_class("cryonb-explorer-pairgrid-button")
    three.add_class("cryonb-explorer-3d-button")
    box = w.VBox([w.HBox([grid, three]), message, out])
    box.add_class("cryonb-explorer-views")
    return box
