"""The JavaScript that draws Gaussians in an NGL stage (run by nglview's ``executeCode``).

Arrays travel as base64 of float32 bytes (about a fifth of the size of JSON numbers). While the
same number of spheres is shown without arrows, a new drawing only writes the new positions, colours
and radii into the existing sphere buffer (no new component, no new representation); otherwise the
shape is built again. Every drawing appends its browser time (ms) to
``window.cryonbGaussianUpdates`` (the last 1,000 kept), so a page can count the updates it received.
"""

from __future__ import annotations

import base64
import json

import numpy as np

NAME = "cryonb-gmm"

_F32 = ("function f32(s) { var b = atob(s), u = new Uint8Array(b.length);"
        " for (var i = 0; i < b.length; i++) u[i] = b.charCodeAt(i); return new Float32Array(u.buffer); }")
_LOG = ("var log = window.cryonbGaussianUpdates = window.cryonbGaussianUpdates || [];"
        " log.push(performance.now()); if (log.length > 1000) log.shift();")


def f32(values) -> str:
    """``values`` as a JavaScript call that rebuilds them as a Float32Array."""
    data = np.ascontiguousarray(values, dtype="<f4").ravel()
    return "f32('" + base64.b64encode(data.tobytes()).decode("ascii") + "')"


def _object(arrays: dict) -> str:
    return "{" + ", ".join(f"{k}: {f32(v)}" for k, v in arrays.items()) + "}"


def draw_script(centers, colors=None, radii=None, arrows: dict | None = None, pad: str | None = None) -> str:
    """Script drawing spheres (``centers`` (N, 3), ``colors`` (N, 3), ``radii`` (N,)) and, optionally,
    ``arrows`` (an NGL ArrowBuffer's arrays: position1, position2, color, radius); then it tells the
    latent pad ``pad`` (its key) that the drawing it asked for has arrived. ``colors`` and ``radii``
    may be left out when they are those of the spheres already drawn."""
    n = len(centers)
    sent = {"position": centers, "color": colors, "radius": radii}
    extra = "" if arrows is None else f"shape.addBuffer(new NGL.ArrowBuffer({_object(arrows)}));"
    return (
        f"var stage = this.stage, n = {n}, arrows = {'true' if arrows else 'false'};" + _F32
        + f"var spheres = {_object({k: v for k, v in sent.items() if v is not None})};"
        + "var drawn = stage.cryonbGaussians;"
        + f"var comps = stage.getComponentsByName('{NAME}').list;"
        + "var same = drawn && drawn.n === n && comps.length === 1;"
        + "if (same) { spheres.color = spheres.color || drawn.color; spheres.radius = spheres.radius || drawn.radius; }"
        + "if (!spheres.color || !spheres.radius) { } else if (!arrows && same && !drawn.arrows) {"
        + " drawn.buffer.setAttributes(spheres); drawn.color = spheres.color; drawn.radius = spheres.radius;"
        + " stage.viewer.requestRender(); } else {"
        + " comps.slice().forEach(function (c) { stage.removeComponent(c); });"
        + f" var shape = new NGL.Shape('{NAME}'), buffer = new NGL.SphereBuffer(spheres); shape.addBuffer(buffer);"
        + extra
        + " stage.addComponentFromObject(shape).addRepresentation('buffer');"
        + " stage.cryonbGaussians = {buffer: buffer, n: n, arrows: arrows, color: spheres.color, radius: spheres.radius};"
        + " if (!drawn) stage.autoView(); }"
        + _LOG
        + ("" if pad is None else f"var pad = (window.cryonbPads || {{}})['{pad}']; if (pad) pad.done();")
    )


PAD_MOVE, PAD_READY = "cryonb-pad", "cryonb-pad-ready"
IN_FLIGHT = 2  # positions on their way at once: one is drawn while the next is computed


def pad_script(key: str, frame: dict) -> str:
    """Script that makes the image of class ``key`` a latent pad (see :mod:`cryonb.widgets.gmm_pad`).

    A pointer move or drag over the plot area of the image sends ``{"type": PAD_MOVE, "x", "y"}`` (data
    coordinates; ``frame`` maps the image to them) to the kernel through the NGL view's model; while
    ``IN_FLIGHT`` drawings are on their way, only the latest position is kept and sent when one
    arrives (or after 1 s without one). ``{"type": PAD_READY}`` is sent once the pad listens.
    """
    return (
        f"var model = this.model, key = '{key}', frame = {json.dumps(frame)}, DEPTH = {IN_FLIGHT};"
        "var pads = window.cryonbPads = window.cryonbPads || {};"
        "(function install() {"
        " var img = document.querySelector('img.' + key);"
        " if (!img) { setTimeout(install, 100); return; }"
        " if (img.dataset.cryonbPad) { model.send({type: '" + PAD_READY + "'}); return; }"
        " img.dataset.cryonbPad = '1'; img.draggable = false; img.style.cursor = 'crosshair'; img.style.touchAction = 'none';"
        " var pad = pads[key] = {inflight: 0, pending: null, sent: 0};"
        " function send(p) { pad.inflight++; pad.sent = performance.now(); model.send({type: '" + PAD_MOVE + "', x: p[0], y: p[1]}); }"
        " pad.done = function () { pad.inflight = Math.max(0, pad.inflight - 1);"
        "  if (pad.pending) { var p = pad.pending; pad.pending = null; send(p); } };"
        " function at(e) { var r = img.getBoundingClientRect();"
        "  var u = ((e.clientX - r.left) / r.width - frame.left) / frame.width, v = ((e.clientY - r.top) / r.height - frame.top) / frame.height;"
        "  if (!(u >= 0 && u <= 1 && v >= 0 && v <= 1)) return null;"
        "  return [frame.x0 + u * (frame.x1 - frame.x0), frame.y1 - v * (frame.y1 - frame.y0)]; }"
        " function move(e) { var p = at(e); if (!p) return;"
        "  if (pad.inflight >= DEPTH && performance.now() - pad.sent < 1000) pad.pending = p;"
        "  else { if (pad.inflight >= DEPTH) pad.inflight = 0; send(p); } }"
        " img.addEventListener('pointermove', move);"
        " img.addEventListener('pointerdown', function (e) { e.preventDefault(); move(e); });"
        " img.addEventListener('dragstart', function (e) { e.preventDefault(); });"
        " model.send({type: '" + PAD_READY + "'}); })();"
    )


def execute(view, code: str) -> None:
    """Run ``code`` in the NGL view at once, outside nglview's message archive and its sending thread
    (which sleeps 0.1 s between idle polls); before the view is loaded, nglview keeps it for later."""
    if getattr(view, "loaded", False):
        view.send(view._get_remote_call_msg("executeCode", target="Widget", args=[code]))
    else:
        view._remote_call("executeCode", target="Widget", args=[code], kwargs={}, fire_once=True)
