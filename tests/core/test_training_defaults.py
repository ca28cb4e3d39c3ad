"""Defaults resolved per device, the learning-rate schedule, old run folders, refined latents."""

import json
import math

import numpy as np
import pytest
import torch

from cryonb.core.refine import refine_latents
from cryonb.core.simulate import simulate
from cryonb.core.training import Trainer, TrainConfig, cosine_factor

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3, device="cpu")


@pytest.fixture(scope="module")
def particles():
    return simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles


def test_open_choices_resolve_per_device():
    gpu = TrainConfig().for_device(torch.device("cuda"), box=128)
    cpu = TrainConfig().for_device(torch.device("cpu"), box=128)
    assert (gpu.dec_width, gpu.enc_width, gpu.batch_size, gpu.lr, gpu.lr_schedule, gpu.encoding, gpu.residual) == \
        (1024, 1024, 32, 3e-4, "cosine", "gaussian", True)
    assert (cpu.dec_width, cpu.enc_width, cpu.batch_size, cpu.lr, cpu.lr_schedule, cpu.encoding, cpu.residual) == \
        (256, 256, 64, 1e-4, "constant", "geometric", False)
    assert (gpu.epochs, cpu.epochs) == (16, 20)
    assert (gpu.decoder_init, cpu.decoder_init) == ("joint", "split")
    for small in (64, 127, None):  # at D = 64 the joint draw cost the clusters; an unknown box is not assumed large
        assert TrainConfig().for_device(torch.device("cuda"), small).decoder_init == "split"
    assert TrainConfig().for_device(torch.device("cuda"), 256).decoder_init == "joint"
    # slice filters on a GPU, where the suite measured them, reaching 32 pixels from a box of 128 up; never on a CPU
    # or an unknown box
    boxes = (64, 127, 128, 256, None)
    assert [TrainConfig().for_device(torch.device("cuda"), box).slice_filters for box in boxes] == [32, 32, 32, 32, 0]
    assert [TrainConfig().for_device(torch.device("cuda"), box).slice_radius for box in boxes] == [16, 16, 32, 32, 16]
    assert TrainConfig(slice_radius=24).for_device(torch.device("cuda"), 128).slice_radius == 24
    assert TrainConfig().for_device(torch.device("cpu"), 64).slice_filters == 0
    assert TrainConfig(slice_filters=4).for_device(torch.device("cuda"), 128).slice_filters == 4
    for unmeasured in (TrainConfig(latents="table"), TrainConfig(poses="table")):  # measured with an encoder and known poses
        assert unmeasured.for_device(torch.device("cuda"), 128).decoder_init == "split"
        assert unmeasured.for_device(torch.device("cuda"), 64).slice_filters == 0
        assert unmeasured.for_device(torch.device("cuda"), 128).slice_filters == 0
    assert TrainConfig(poses="table").for_device(torch.device("cuda")).lr == 2e-4  # ab initio's map, as measured
    chosen = TrainConfig(enc_width=64, dec_width=64, batch_size=8, lr=3e-3, lr_schedule="constant", residual=False, encoding="none",
                         epochs=5, decoder_init="split", encoder_average=0.0, slice_filters=0, slice_radius=16, beta=0.5)
    assert chosen.for_device(torch.device("cuda"), 128) == chosen.for_device(torch.device("cpu"), 64) != gpu



def test_the_kl_term_is_off_by_default_where_the_suite_measured_it_off():
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert [TrainConfig().for_device(gpu, box).beta for box in (64, 127, 128, 256, None)] == [0.125, 0.125, 0.0, 0.0, 0.125]
    assert TrainConfig(zdim=4).for_device(cpu, 128).beta == 0.25  # 1 / zdim on a CPU
    for unmeasured in (TrainConfig(latents="table"), TrainConfig(poses="table")):  # an autodecoder's prior, ab initio
        assert unmeasured.for_device(gpu, 128).beta == 0.125
    assert TrainConfig(beta=0.3).for_device(gpu, 128).beta == 0.3 and TrainConfig(beta=0.0).for_device(cpu).beta == 0.0
    # a run saved before this default recorded null, which trained with 1 / zdim, and resumes with it on any box
    old = TrainConfig.from_dict({"zdim": 4, "beta": None})
    assert old.beta == 0.25 and old.for_device(gpu, 128).kl_weight == 0.25
    assert TrainConfig.from_dict({"zdim": 4, "beta": 0.0}).for_device(gpu, 64).beta == 0.0

def test_the_trainer_resolves_the_defaults_for_the_box_it_trains_at(particles, monkeypatch):
    boxes, resolve = [], TrainConfig.for_device
    monkeypatch.setattr(TrainConfig, "for_device", lambda config, device, box=None: boxes.append(box) or resolve(config, device, box))
    Trainer(particles, TrainConfig(**TINY))
    Trainer(particles, TrainConfig(**TINY, box=8))  # Fourier-cropped first
    assert boxes == [16, 8]


def test_cosine_factor_warms_up_then_decays_to_its_floor():
    f = np.array([cosine_factor(step, 5000, 0.1) for step in range(6000)])
    assert f[0] == pytest.approx(0.01) and f[99] == 1.0  # a linear warm-up over 2 % of the steps
    assert np.all(np.diff(f[99:5000]) <= 0)  # then only down
    assert f[4999] == pytest.approx(0.1, abs=1e-6) and np.all(f[5000:] == 0.1)  # to the floor, and it stays there
    assert cosine_factor(0, 10**6, 0.1) == pytest.approx(1e-3)  # the warm-up is at most 1,000 steps


def test_trainer_follows_the_schedule_past_the_plan(particles):
    t = Trainer(particles, TrainConfig(**{**TINY, "lr_schedule": "cosine", "epochs": 4}))
    seen = []
    t.listeners.append(lambda event, tr: seen.append(tr.optimizer.param_groups[0]["lr"]) if event == "step" else None)
    t.fit(5, progress=False)  # one epoch beyond the plan
    steps = 4 * t.batches_per_epoch
    expected = [1e-3 * cosine_factor(i, steps, 0.1) for i in range(5 * t.batches_per_epoch)]
    assert np.allclose(seen, expected)


def test_runs_from_before_the_new_keys_load_as_they_were(particles, tmp_path):
    run = tmp_path / "run"
    Trainer(particles, TrainConfig(**{**TINY, "residual": False, "encoding": "gaussian", "pe_sigma": math.pi / 2}),
            run_dir=run).fit(1, progress=False)
    meta = json.loads((run / "config.json").read_text())
    for key in ("residual", "pe_sigma", "lr_schedule", "lr_final", "epochs", "cuda_graphs", "decoder_init", "slice_filters",
                "slice_radius", "fused_optimizer"):
        del meta["config"][key]  # as an earlier cryonb wrote it
    meta["config"]["beta"] = None  # which meant 1 / zdim
    (run / "config.json").write_text(json.dumps(meta))
    resumed = Trainer.from_run(run, particles)
    assert resumed.config.residual is False and resumed.config.lr_schedule == "constant"
    assert resumed.config.decoder_init == "split" and resumed.config.slice_filters == 0 and resumed.config.beta == 0.5
    assert resumed.config.fused_optimizer is False and TrainConfig().fused_optimizer  # earlier GPU runs: torch's passes
    assert not resumed.optimizer.param_groups[0]["fused"]  # and on a CPU never the fused kernel
    assert TrainConfig.from_dict({"slice_filters": 32}).slice_radius == 16  # a run with filters saved before the key
    resumed.fit(1, progress=False)  # the old weights fit the rebuilt model
    assert resumed.epoch == 2


def test_refined_latents_fit_the_images_better(particles):
    t = Trainer(particles, TrainConfig(**TINY)).fit(3, progress=False)
    before = [p.detach().clone() for p in t.model.parameters()]
    z0 = t.embed()
    z1 = refine_latents(t, iterations=20)
    assert z1.shape == z0.shape and not np.allclose(z0, z1)
    assert all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))  # the model is untouched

    def objective(z):
        idx = torch.arange(len(z))
        images, rotations, ctf = t.data.batch(idx)
        with torch.no_grad():
            pred = t.model.decoder(t.model.coords @ rotations, torch.as_tensor(z)) * ctf
        sse = torch.view_as_real(pred - images).pow(2).sum((-1, -2))
        return float((sse + 0.5 * t.config.kl_weight * torch.as_tensor(z).pow(2).sum(-1)).mean())

    assert objective(z1) < objective(z0)

    some = refine_latents(t, iterations=20, indices=[3, 0], batch_size=1)
    np.testing.assert_array_equal(np.delete(some, [0, 3], 0), np.delete(z0, [0, 3], 0))  # the rest keep the encoder's
    np.testing.assert_allclose(some[[0, 3]], z1[[0, 3]], rtol=1e-5, atol=1e-6)  # refined as in the full pass


def test_particles_without_images_are_refused_by_name(particles):
    from cryonb.core.errors import InputError

    bare = particles.subset(slice(None))
    bare.images = None
    with pytest.raises(InputError, match="no images to train on"):
        Trainer(bare, TrainConfig(**TINY))


def test_the_decoder_can_learn_at_a_rate_of_its_own(particles, tmp_path):
    config = TrainConfig(**{**TINY, "lr_schedule": "cosine", "epochs": 3, "decoder_lr_scale": 2.0})
    t = Trainer(particles, config, run_dir=tmp_path / "run")
    rates = []
    t.listeners.append(lambda event, tr: rates.append([g["lr"] for g in tr.optimizer.param_groups]) if event == "step" else None)
    t.fit(2, progress=False)
    steps = 3 * t.batches_per_epoch
    assert np.allclose(rates, [[1e-3 * cosine_factor(i, steps, 0.1), 2e-3 * cosine_factor(i, steps, 0.1)]
                               for i in range(2 * t.batches_per_epoch)])
    groups = t.optimizer.param_groups
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in t.model.decoder.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(t.model.parameters()))
    resumed = Trainer.from_run(tmp_path / "run", particles)  # the groups and their rates come back
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [g["lr"] for g in groups]
    assert [g.get("lr_scale", 1.0) for g in resumed.optimizer.param_groups] == [1.0, 2.0]
