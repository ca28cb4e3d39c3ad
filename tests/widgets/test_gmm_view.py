import base64
import re
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
    monkeypatch.setattr(gmm_view, "execute", lambda view, code: sent.append(code))
    return sent


def arrays(script: str) -> dict[str, list[np.ndarray]]:
    """The float32 arrays a drawing script carries, by name (in order of appearance)."""
    out = {}
    for name, data in re.findall(r"(\w+): f32\('([^']*)'\)", script):
        out.setdefault(name, []).append(np.frombuffer(base64.b64decode(data), dtype="<f4"))
    return out


def test_show_draws_one_sphere_per_gaussian_at_the_latent(run, calls):
    view = gmm_view.GaussianView(run)
    view.show(view.latent_at(1.5, -0.5))
    script = calls[-1]
    assert "SphereBuffer" in script and "setAttributes" in script
    sent = arrays(script)
    assert len(sent["radius"][0]) == 14 and sent["position"][0].shape == (42,)
    expected = gmm_view.spheres(view.decoder, [1.5, -0.5], 2.0)
    assert np.allclose(sent["position"][0], expected.centers.ravel())
    assert np.allclose(view.current, [1.5, -0.5])
    assert "1.50" in view.label.value


def test_quiver_draws_arrows_only_for_what_moves(run, calls):
    view = gmm_view.GaussianView(run)
    view.quiver([0, 0], [2, 2], min_shift=1e-3)
    script = calls[-1]
    assert "ArrowBuffer" in script
    assert len(arrays(script)["position1"][0]) == 3 * 4  # the 4 domain Gaussians move, the body does not


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
    assert calls and "SphereBuffer" in calls[-1]


def test_eigen_motion_draws_arrows_along_the_first_principal_axis(run, calls):
    view = gmm_view.GaussianView(run)
    view.eigen_motion(pc=0, scale=2.0)
    sent = arrays(calls[-1])
    from cryonb.core.analysis import pc_traversal

    z0, z1 = pc_traversal(run.z, pc=0, n=2)
    start, shift = gmm_view.motion(view.decoder, z0, z1, 2.0)
    assert np.allclose(sent["position1"][0], start.ravel(), atol=1e-5)
    assert np.allclose(sent["position2"][0], (start + 2.0 * shift).ravel(), atol=1e-5)
