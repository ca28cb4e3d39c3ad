"""benchmarks/sweep_inputs.py classifies each file: loaded, clear error, traceback or non-finite."""

import json

import numpy as np
import pytest

import cryonb.core.particles
from benchmarks import sweep_inputs
from cryonb.core.io.mrc import write_stack
from cryonb.core.simulate import simulate


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    simulate("hinge", 20, D=16, apix=4.0, snr=1.0, seed=1, progress=False).save(root / "good")
    (root / "junk.star").write_bytes(b"\x00\x01binary junk\xff" * 10)
    images = np.zeros((4, 16, 16), np.float32)
    images[2, 3, 3] = np.nan
    write_stack(root / "one_nan.mrcs", images, 2.0)
    (root / "crash.star").write_text("data_particles\n\nloop_\n_rlnImageName #1\n1@nowhere.mrcs\n")
    (root / "notes.txt").write_text("not read")
    return root


def test_each_file_is_classified(folder, monkeypatch, capsys):
    real_load = cryonb.core.particles.load_particles

    def load(path, **kwargs):  # a crafted bug: load_particles fails with a plain exception on one file
        if path.name == "crash.star":
            raise ZeroDivisionError("division by zero")
        return real_load(path, **kwargs)

    monkeypatch.setattr(cryonb.core.particles, "load_particles", load)
    rows = {r.path.removeprefix(str(folder) + "/"): r for r in sweep_inputs.sweep(folder)}
    assert "notes.txt" not in rows and "good/truth.npz" not in rows
    assert rows["good/particles.star"].overall == "loaded" and rows["good/particles.mrcs"].overall == "loaded"
    assert rows["junk.star"].overall == "clear error" and rows["junk.star"].info.status == "clear error"
    assert "junk.star" in rows["junk.star"].info.detail
    assert rows["one_nan.mrcs"].overall == "non-finite"
    assert rows["crash.star"].load.status == "traceback" and "ZeroDivisionError: division by zero at" in rows["crash.star"].load.detail
    assert rows["good/volumes/state_00.mrc"].info.status == "loaded"
    text = sweep_inputs.table(list(rows.values()), folder)
    assert "junk.star" in text
    assert text.splitlines()[-1].startswith(f"{len(rows)} files: traceback 1, non-finite")

    out = folder.parent / "sweep.json"
    assert sweep_inputs.main([str(folder), "--quiet", "--json", str(out)]) == 1  # a traceback and a NaN
    table = capsys.readouterr().out
    assert "overall" in table.splitlines()[0] and "crash.star" in table
    assert {r["overall"] for r in json.loads(out.read_text())} == {"loaded", "clear error", "traceback", "non-finite"}


def test_a_folder_without_problems_exits_0(folder, capsys):
    assert sweep_inputs.main([str(folder / "good"), "--quiet", "--max-images", "5"]) == 0
    assert "traceback 0, non-finite 0, clear error 0" in capsys.readouterr().out


def test_real_files(real_data):
    rows = sweep_inputs.sweep(real_data / "cryodrgn" / "relion31.star")
    assert [r.overall for r in rows] == ["loaded"]
    rows = sweep_inputs.sweep(real_data / "starfile" / "postprocess.star")
    assert rows[0].overall == "clear error" and "post-processing" in rows[0].load.detail
