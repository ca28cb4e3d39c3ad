"""The notebook a shared bundle carries runs top to bottom within Binder's 2 GB, as the quickstart does
(the driver and the memory watch are those of tests/test_binder.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_binder import BINDER_MEMORY, run_notebook_measured  # noqa: E402



@pytest.mark.slow
def test_bundle_notebook_runs_within_binders_memory(tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("holoviews")
    pytest.importorskip("psutil")
    from cryonb.core.particles import load_particles, write_star
    from cryonb.core.run import Run
    from cryonb.core.simulate import simulate
    from cryonb.core.training import TrainConfig, Trainer

    write_star(simulate("hinge", 200, D=24, apix=6.0, snr=1.0, seed=1, progress=False).particles, tmp_path / "particles.star")
    config = TrainConfig(zdim=4, enc_width=64, dec_width=64, batch_size=32, lr=1e-3, device="cpu")
    run = Run.from_trainer(Trainer(load_particles(tmp_path / "particles.star"), config).fit(1, progress=False))
    bundle = tmp_path / "bundle"
    run.share(bundle, coords=run.z[:, :2], clusters=np.arange(200) % 4, selections={"some": np.arange(0, 200, 7)},
              traversals={"line": run.z[:5]}, progress=False)
    (tmp_path / "particles.mrcs").unlink()  # the stack is not there: the bundle must do without it

    m = run_notebook_measured(bundle / "explore.ipynb", bundle)
    assert m.returncode == 0, f"the bundle's notebook failed:\n{m.err[-4000:]}"
    kernel, peak = m.kernel, m.peak
    print(f"bundle notebook: peak {peak / 1e9:.2f} GB (kernel {kernel / 1e9:.2f} GB)")
    assert kernel > 150e6 and peak < BINDER_MEMORY, f"the bundle's notebook peaks at {peak / 1e9:.2f} GB"
    saved = bundle / "my_selection.star"
    assert saved.exists() and len(np.load(bundle / "my_selection.ind.npy")) == len(range(0, 200, 7))
    assert json.loads((bundle / "explore.ipynb").read_text())["cells"][0]["cell_type"] == "markdown"
