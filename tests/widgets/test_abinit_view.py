"""AbinitView without a browser: it follows an ab initio run epoch by epoch and lets go of it on close."""

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from cryonb.core.abinit import Abinit, AbinitConfig  # noqa: E402
from cryonb.widgets.abinit_view import AbinitView, render  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = dict(device="cpu", dec_width=16, dec_depth=1, batch_size=16, lr=1e-3)
QUICK = AbinitConfig(pretrain_images=16, search_epochs=1, map_epochs=1, base_resolution=0, iterations=1, keep=2, shift_extent=0)


@pytest.fixture(scope="module")
def simulation():
    from cryonb.core.phantoms import hinge
    from cryonb.core.simulate import simulate

    return simulate(hinge(16)[None], n=32, snr=10.0, seed=3, progress=False)


def test_view_records_the_pose_error_per_epoch_and_redraws(simulation):
    sim = simulation.particles
    ab = Abinit(type(sim)(sim.images, None, None, sim.ctf, sim.apix), zdim=0, settings=QUICK, **TINY)
    view = AbinitView(ab, reference=sim.rotations)
    first = bytes(view.image.value)
    assert first.startswith(PNG_MAGIC) and view.label.value.startswith("epoch 0")
    ab.fit(3, progress=False)  # pretrain + search, map, refine
    assert [(e, p) for e, p, _ in view.errors] == [(1, "search"), (2, "map"), (3, "refine")]
    expected = ab.align(sim.rotations).median_error
    assert view.errors[-1][2] == pytest.approx(expected)
    assert "(refine)" in view.label.value and f"{expected:.1f}°" in view.label.value
    assert bytes(view.image.value) != first
    view.close()
    assert view._listener not in ab.trainer.listeners
    ab.fit(1, progress=False)
    assert len(view.errors) == 3


def test_view_without_reference_shows_the_map_only(simulation):
    sim = simulation.particles
    ab = Abinit(type(sim)(sim.images, None, None, sim.ctf, sim.apix), zdim=0, settings=QUICK, **TINY)
    view = AbinitView(ab)
    ab.fit(1, progress=False)
    assert view.errors == [] and "pose error" not in view.label.value and "turned" not in view.label.value
    ab.fit(1, progress=False)  # the search epoch has ended: how far it turned the poses is told
    assert f"turned the poses {ab.history[-1]['poses_moved']:.1f}°" in view.label.value
    assert "start found" not in view.label.value  # one start: nothing to compare
    ab.trainer.history[0].update(start=1, start_agreement=[62.0, 0.0, 40.5])  # as the choice of three starts records it
    view.refresh()
    assert "no other start found these poses (the nearest 40° away)" in view.label.value
    ab.trainer.history[0].update(start_agreement=[9.4, 0.0, 40.5])
    view.refresh()
    assert "another start found these poses (9°)" in view.label.value
    assert render(np.zeros((8, 8, 8), np.float32)).startswith(PNG_MAGIC)
