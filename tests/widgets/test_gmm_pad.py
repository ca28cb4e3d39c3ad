"""The latent pad without a browser: its picture's frame, the messages it answers, what a drawing carries."""

import base64
import io
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("nglview")

from cryonb.core.gmm import GaussianDecoder, moving_domain  # noqa: E402
from cryonb.widgets import gmm_pad, gmm_view  # noqa: E402
from cryonb.widgets.gmm_scripts import PAD_MOVE, PAD_READY, draw_script  # noqa: E402


@pytest.fixture
def view(monkeypatch):
    system = moving_domain(16, n_body=10, n_domain=4)
    dec = GaussianDecoder(system.at(0.5), zdim=2, width=8, depth=1, mode="position", movable=system.domain)
    with torch.no_grad():
        dec.net[-1].weight.normal_(0, 1.0)
    z = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    sent = []
    monkeypatch.setattr(gmm_view, "execute", lambda v, code: sent.append(code))
    view = gmm_view.GaussianView(SimpleNamespace(model=SimpleNamespace(decoder=dec), z=z, apix=2.0, run_dir=None))
    view.sent = sent
    return view


def names(script: str) -> list[str]:
    return re.findall(r"(\w+): f32\('", script)


def test_the_frame_maps_the_plot_area_to_the_data_range():
    from PIL import Image

    png, frame = gmm_pad.render(np.array([0.0, 10.0]), np.array([-1.0, 1.0]), ("z1", "z2"))
    assert Image.open(io.BytesIO(png)).size == gmm_pad.SIZE
    assert frame["x0"] < 0 < 10 < frame["x1"] and frame["y0"] < -1 < 1 < frame["y1"]
    assert 0 < frame["left"] < frame["left"] + frame["width"] <= 1 and 0 < frame["top"] < frame["top"] + frame["height"] <= 1


def test_a_move_message_draws_the_gaussians_at_its_latent_and_releases_the_pad(view):
    view.widget()
    pad = view.pad
    pad._on_message(view.view, {"type": PAD_MOVE, "x": 1.25, "y": -0.5})
    assert np.allclose(view.current, [1.25, -0.5]) and pad.moves == 1
    assert f"window.cryonbPads || {{}})['{pad.key}']" in view.sent[-1] and "pad.done()" in view.sent[-1]
    assert pad.key in view.pad.image._dom_classes


def test_positions_alone_travel_while_colours_and_radii_stay_the_same(view):
    view.show([0.0, 0.0])
    assert names(view.sent[-1]) == ["position", "color", "radius"]
    view.show([1.0, 1.0])  # "position" mode: only the positions change
    assert names(view.sent[-1]) == ["position"]
    view.widget()
    view.pad._on_message(view.view, {"type": PAD_READY})  # a new view in the page: everything again
    assert names(view.sent[-1]) == ["position", "color", "radius"]


def test_spheres_are_drawn_at_a_fraction_of_the_gaussians_width(view):
    view.sphere_scale = 0.25
    view.show([0.0, 0.0])
    radius = re.search(r"radius: f32\('([^']*)'\)", view.sent[-1]).group(1)
    widths = gmm_view.spheres(view.decoder, [0.0, 0.0], 2.0).radii
    assert np.allclose(np.frombuffer(base64.b64decode(radius), dtype="<f4"), 0.25 * widths)


def test_a_drawing_script_without_colours_reuses_those_drawn():
    script = draw_script(np.zeros((3, 3)))
    assert "spheres.color || drawn.color" in script and "setAttributes" in script


def test_arrows_drawn_before_the_view_is_shown_are_drawn_again_when_it_is(view):
    view.eigen_motion(pc=0, scale=2.0)
    view.widget()
    assert "ArrowBuffer" in view.sent[-1]
    view.pad._on_message(view.view, {"type": PAD_READY})
    assert "ArrowBuffer" in view.sent[-1]
    view.pad._on_message(view.view, {"type": PAD_MOVE, "x": 0.5, "y": 0.5})  # the pointer draws spheres alone
    assert "ArrowBuffer" not in view.sent[-1]
