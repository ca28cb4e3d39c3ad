"""One import: ``import cryonb`` gives a notebook everything, loading the views only on use (issue 14, item 8)."""

import json
import subprocess
import sys

import cryonb

VIEW_LIBRARIES = ("ipywidgets", "nglview", "holoviews", "bokeh", "datashader", "panel", "jupyter_bokeh")


def test_the_top_level_names_are_the_library_s():
    from cryonb.core.particles import ParticleSet, load_particles, save_selection
    from cryonb.core.run import Run
    from cryonb.core.simulate import simulate
    from cryonb.core.training import TrainConfig, Trainer
    from cryonb.widgets.explore import explore

    assert cryonb.load_particles is load_particles and cryonb.save_selection is save_selection
    assert cryonb.ParticleSet is ParticleSet and cryonb.simulate is simulate
    assert cryonb.Trainer is Trainer and cryonb.TrainConfig is TrainConfig and cryonb.Run is Run
    assert cryonb.explore is explore
    assert {"load_particles", "simulate", "Trainer", "TrainConfig", "Run", "explore"} <= set(dir(cryonb)) & set(cryonb.__all__)


def test_import_cryonb_loads_no_view_library_until_explore_is_used():
    code = (
        "import json, sys, cryonb\n"
        "views = lambda: sorted(set(m.split('.')[0] for m in sys.modules) & set(%r))\n"
        "torch = 'torch' in sys.modules\n"
        "before = views()\n"
        "cryonb.load_particles, cryonb.simulate, cryonb.Trainer, cryonb.TrainConfig, cryonb.Run\n"
        "after_core = views()\n"
        "cryonb.explore\n"
        "print(json.dumps([torch, before, after_core, views()]))\n"
    ) % (VIEW_LIBRARIES,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    torch, before, after_core, after_explore = json.loads(out.stdout)
    assert not torch  # import cryonb stays quick: torch loads with the first core name used
    assert before == after_core == []  # the core names load no view library
    assert "ipywidgets" in after_explore  # cryonb.explore does


def test_an_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        cryonb.nonsense  # noqa: B018
