"""Fuzzing run folders: any damaged config.json or checkpoint gives a clear InputError (or a warning and an
earlier checkpoint), never another exception. CRYONB_FUZZ_EXAMPLES=2000 runs them long."""

import json
import os
import shutil
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cryonb.core.errors import InputError
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig, load_checkpoint, read_run_config

EXAMPLES = int(os.environ.get("CRYONB_FUZZ_EXAMPLES", "60"))  # each example trains a tiny model: fewer by default
TINY = dict(zdim=2, enc_width=16, enc_depth=1, dec_width=16, dec_depth=1, batch_size=16, lr=1e-3)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
any_values = st.one_of(
    json_values,
    st.builds(lambda shape: torch.zeros(shape), st.lists(st.integers(0, 4), max_size=3)),
    st.builds(lambda n: [(i, 0.5, 0.1) for i in range(n)], st.integers(0, 3)),
    st.integers(-(2**70), 2**70),
)


@pytest.fixture(scope="module")
def particles():
    return simulate("hinge", 40, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles


@pytest.fixture(scope="module")
def run(particles, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz") / "run"
    Trainer(particles, TrainConfig(**TINY), run_dir=folder).fit(2, progress=False)
    return folder


def copy(run, tmp_path_factory):
    target = tmp_path_factory.mktemp("case") / "run"
    shutil.copytree(run, target)
    return target


def resumes_or_refuses(folder, particles):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            trainer = Trainer.from_run(folder, particles)
        except InputError:
            return
    trainer.fit(trainer.epoch + 1 - trainer.epoch, progress=False)  # what it loaded, it can train on


@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_fuzz_config_json(run, particles, tmp_path_factory, data):
    folder = copy(run, tmp_path_factory)
    meta = json.loads((folder / "config.json").read_text())
    table = data.draw(st.sampled_from([meta, meta["config"]]))
    key = data.draw(st.sampled_from(sorted(table)))
    if data.draw(st.booleans()):
        del table[key]
    else:
        table[key] = data.draw(json_values)
    (folder / "config.json").write_text(json.dumps(meta))
    try:
        read_run_config(folder)
    except InputError as err:
        assert "config.json" in str(err) and "Fix:" in str(err)
        return
    if key in ("enc_width", "dec_width", "zdim", "enc_depth", "dec_depth", "box", "n_freqs") and key in meta.get("config", {}):
        return  # a valid but different model size: refused by the checkpoint (tested elsewhere), not worth building here
    resumes_or_refuses(folder, particles)


@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_fuzz_checkpoint_values(run, particles, tmp_path_factory, data):
    folder = copy(run, tmp_path_factory)
    path = folder / "checkpoints" / "step_00000006.pt"  # the latest; resuming falls back to step 3, unless
    if data.draw(st.booleans()):
        (folder / "checkpoints" / "step_00000003.pt").unlink()  # there is none
    state = torch.load(path, weights_only=True)
    key = data.draw(st.sampled_from(sorted(state)))
    if data.draw(st.booleans()):
        del state[key]
    else:
        state[key] = data.draw(any_values)
    torch.save(state, path)
    try:
        load_checkpoint(path)
    except InputError as err:
        assert str(path) in str(err) and "Fix:" in str(err)
    resumes_or_refuses(folder, particles)


@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_fuzz_checkpoint_bytes(run, particles, tmp_path_factory, data):
    folder = copy(run, tmp_path_factory)
    path = folder / "checkpoints" / "step_00000006.pt"  # the latest; resuming falls back to step 3, unless
    if data.draw(st.booleans()):
        (folder / "checkpoints" / "step_00000003.pt").unlink()  # there is none
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))
    try:
        load_checkpoint(path)
    except InputError as err:
        assert str(path) in str(err) and "Fix:" in str(err)
    resumes_or_refuses(folder, particles)
