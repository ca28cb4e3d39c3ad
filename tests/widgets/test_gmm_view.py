from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("nglview")

from cryonb.core.errors import InputError  # noqa: E402
from cryonb.core.gmm import GaussianDecoder, moving_domain  # noqa: E402
from cryonb.widgets import gmm_view  # noqa: E402


@pytest.fixture
def run():
    system = moving_domain(16, n_body=10, n_domain=4)
    dec = GaussianDecoder(system.at(0.5), zdim=2, width=8, depth=1, mode="position", movable=system.domain)
    with torch.no_grad():
        dec.net[-1].weight.normal_(0, 1.0)
    z = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    return SimpleNamespace(model=SimpleNamespace(decoder=dec), z=z, apix=2.0, run_dir=None)


@pytest.fixture
def calls(monkeypatch):
    sent = []
    monkeypatch.setattr(gmm_view, "_call_ngl", lambda view, method, *args, **kw: sent.append((method, args)))
    return sent


def test_show_draws_one_sphere_per_gaussian_at_the_latent(run, calls):
    view = gmm_view.GaussianView(run)
    view.show(view.latent_at(1.5, -0.5))
    method, (script,) = calls[-1]
    assert method == "executeCode" and "SphereBuffer" in script and "removeComponent" in script
    radius = script.split("radius: new Float32Array(")[1].split(")")[0]
    assert len(eval(radius)) == 14
    assert np.allclose(view.current, [1.5, -0.5])
    assert "1.50" in view.label.value


def test_quiver_draws_arrows_only_for_what_moves(run, calls):
    view = gmm_view.GaussianView(run)
    view.quiver([0, 0], [2, 2], min_shift=1e-3)
    script = calls[-1][1][0]
    assert "ArrowBuffer" in script
    starts = eval(script.split("position1: new Float32Array(")[1].split(")")[0])
    assert len(starts) == 3 * 4  # the 4 domain Gaussians move, the body does not


def test_one_dimensional_latents_use_the_vertical_axis(run, calls):
    run.z = run.z[:, :1]
    view = gmm_view.GaussianView(run)
    assert view.dims == (0,)
    assert np.allclose(view.latent_at(12, 0.7), [0.7])


def test_a_run_without_gaussians_is_refused():
    with pytest.raises(InputError, match="not a Gaussian mixture"):
        gmm_view.GaussianView(SimpleNamespace(model=SimpleNamespace(decoder=torch.nn.Linear(1, 1)), z=np.zeros((3, 1))))


def test_the_pointer_over_the_scatter_moves_the_gaussians(run, calls):
    pytest.importorskip("holoviews")
    view = gmm_view.GaussianView(run)
    view.scatter()
    view.pointer.event(x=0.25, y=-1.0)
    assert np.allclose(view.current, [0.25, -1.0])
    assert calls and calls[-1][0] == "executeCode"
