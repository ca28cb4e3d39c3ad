"""Opening cryoDRGN run folders: latents, epochs, configs of every age, particles, and clear errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import yaml

from cryonb.core.errors import InputError
from cryonb.core.interop import (is_cryodrgn_run, open_cryodrgn_run, particles_from_cryodrgn_run, read_analysis,
                                 saved_epochs)
from cryonb.core.io.mrc import read_map
from cryonb.core.io.pickles import load_pickle
from cryonb.core.run import Run
from cryonb.core.simulate import simulate

from conftest import write_cryodrgn_particles

MAIN = "vae_gaussian_fourier"


def _edit_config(run_dir, change):
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    change(config)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def particles_250():
    """250 simulated particles of 16² pixels (the main fixture run has latents for 200)."""
    return simulate("hinge", 250, D=16, apix=6.0, snr=1.0, seed=7, progress=False).particles


def test_latents_are_read_as_cryodrgn_wrote_them(cryodrgn_run):
    run_dir = cryodrgn_run(MAIN)
    with pytest.warns(UserWarning, match="pixel size is unknown"):
        run = Run.open(run_dir, device="cpu")
    assert run.z.shape == (200, 2) and run.z.dtype == np.float32
    np.testing.assert_allclose(run.z, load_pickle(run_dir / "z.2.pkl"), rtol=1e-6)
    np.testing.assert_allclose(run.z[0], np.loadtxt(run_dir / "zvalues.txt")[0], atol=1e-6)  # as printed for eval_vol
    assert run.epoch == 2 and run.apix == 1.0 and run.particles is None
    assert run.config.command == "train_vae" and run.config.zdim == 2 and run.config.box == 16 and run.config.version == "4.3.1"


def test_abinit_run_latents(cryodrgn_run):
    run = open_cryodrgn_run(cryodrgn_run("abinit"), apix=6.0, device="cpu")
    assert run.config.command == "abinit" and run.epoch == 1 and run.z.shape == (100, 2) and run.box_size == 16


def test_folders_are_told_apart(cryodrgn_run, tmp_path):
    run_dir = cryodrgn_run(MAIN)
    assert is_cryodrgn_run(run_dir) and is_cryodrgn_run(run_dir / "analyze.2")
    (tmp_path / "cryonb_run").mkdir()
    (tmp_path / "cryonb_run" / "config.json").write_text("{}")
    (tmp_path / "cryonb_run" / "config.yaml").write_text("model_args: {}")
    assert not is_cryodrgn_run(tmp_path / "cryonb_run") and not is_cryodrgn_run(tmp_path)


def test_an_epoch_is_chosen_by_number_or_by_its_analyze_folder(cryodrgn_run):
    run_dir = cryodrgn_run(MAIN)
    assert saved_epochs(run_dir) == [2]
    with pytest.warns(UserWarning, match="pixel size is unknown"):
        run = Run.open(run_dir / "analyze.2", device="cpu", epoch=None)
    assert run.epoch == 2 and run.run_dir == run_dir
    with pytest.raises(InputError, match=r"weights\.1\.pkl: epoch 1 was not saved \(saved epochs: 2\)"):
        Run.open(run_dir, epoch=1)
    (run_dir / "weights.1.pkl").write_bytes((run_dir / "weights.2.pkl").read_bytes())
    (run_dir / "z.1.pkl").unlink()
    with pytest.raises(InputError, match=r"z\.1\.pkl: file not found"):
        Run.open(run_dir, epoch=1, device="cpu")


def test_the_final_weights_pkl_of_a_run_without_numbered_epochs(cryodrgn_run):
    run_dir = cryodrgn_run(MAIN)
    (run_dir / "weights.2.pkl").rename(run_dir / "weights.pkl")
    (run_dir / "z.2.pkl").rename(run_dir / "z.pkl")
    for name in ("z.1.pkl",):
        (run_dir / name).unlink()
    run = open_cryodrgn_run(run_dir, apix=1.0, device="cpu")
    assert run.epoch is None and run.z.shape == (200, 2)


def test_kmeans_of_cryodrgn_analyze_are_read(cryodrgn_run):
    analysis = read_analysis(cryodrgn_run(MAIN))
    assert analysis["epoch"] == 2 and analysis["kmeans_labels"].shape == (200,)
    assert analysis["kmeans_labels"].max() < 20 and len(analysis["kmeans_centres"]) == 20


def test_a_folder_without_weights_names_itself(cryodrgn_run):
    run_dir = cryodrgn_run(MAIN)
    (run_dir / "weights.2.pkl").unlink()
    with pytest.raises(InputError, match="has no weights.N.pkl") as error:
        Run.open(run_dir)
    assert error.value.path == str(run_dir)


def test_a_truncated_weights_file_is_named(cryodrgn_run):
    run_dir = cryodrgn_run(MAIN)
    weights = run_dir / "weights.2.pkl"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint: truncated or corrupt") as error:
        Run.open(run_dir)
    assert error.value.path == str(weights)


def test_weights_that_are_not_plain_tensors_are_refused_unrun(cryodrgn_run, tmp_path):
    import torch

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    run_dir = cryodrgn_run(MAIN)
    torch.save({"model_state_dict": {}, "x": Payload()}, run_dir / "weights.2.pkl")
    with pytest.raises(InputError, match="not plain tensors"):
        Run.open(run_dir)
    assert not (tmp_path / "ran").exists()


def test_weights_of_another_architecture_are_named(cryodrgn_run):
    run_dir = cryodrgn_run(MAIN)
    _edit_config(run_dir, lambda c: c["model_args"].update(pdim=32))
    with pytest.raises(InputError, match="do not fit the architecture in config.yaml") as error:
        Run.open(run_dir)
    assert error.value.path.endswith("weights.2.pkl")


@pytest.mark.parametrize("key, value", [("pe_type", "fourier_features"), ("domain", "real"), ("activation", "gelu")])
def test_a_config_of_an_unknown_architecture_is_named(cryodrgn_run, key, value):
    run_dir = cryodrgn_run(MAIN)
    _edit_config(run_dir, lambda c: c["model_args"].update({key: value}))
    with pytest.raises(InputError, match=f"model_args.{key} is '{value}', an architecture cryonb does not know") as error:
        Run.open(run_dir)
    assert error.value.path == str(run_dir / "config.yaml")


def test_a_config_yaml_cannot_run_code(cryodrgn_run, tmp_path):
    run_dir = cryodrgn_run(MAIN)
    text = (run_dir / "config.yaml").read_text()
    evil = f"evil: !!python/object/apply:os.system ['touch {tmp_path / 'ran'}']\n"
    (run_dir / "config.yaml").write_text(evil + text)
    with pytest.raises(InputError, match="not a readable cryoDRGN config"):
        Run.open(run_dir)
    assert not (tmp_path / "ran").exists()


def test_numpy_scalars_written_by_old_cryodrgn_yaml_are_read(cryodrgn_run):
    run_dir = cryodrgn_run(MAIN)
    text = (run_dir / "config.yaml").read_text()
    std = yaml.safe_load(text)["dataset_args"]["norm"][1]
    tagged = ("  - !!python/object/apply:numpy.core.multiarray.scalar\n"
              "    - !!python/object/apply:numpy.dtype\n      args: [f8, false, true]\n"
              "      state: !!python/tuple [3, <, null, null, null, -1, -1, 0]\n"
              f"    - !!binary |\n      {__import__('base64').b64encode(np.float64(std).tobytes()).decode()}\n")
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.strip() == "norm:")
    lines[at + 2] = tagged
    (run_dir / "config.yaml").write_text("".join(lines))
    run = open_cryodrgn_run(run_dir, apix=1.0, device="cpu")
    assert run.config.norm == (0.0, std)


def test_an_old_config_pkl_is_read_through_the_restricted_unpickler(cryodrgn_run):
    run_dir = cryodrgn_run(MAIN)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    for key in ("activation", "tilt_params", "feat_sigma"):  # absent before cryoDRGN 1.0
        config["model_args"].pop(key)
    config["dataset_args"]["norm"] = [np.float64(0.0), np.float32(config["dataset_args"]["norm"][1])]
    config.pop("time")
    with open(run_dir / "config.pkl", "wb") as f:
        pickle.dump(config, f)
    (run_dir / "config.yaml").unlink()
    run = open_cryodrgn_run(run_dir, apix=1.0, device="cpu")
    reference, _ = read_map(run_dir / "evalvol" / "vol_001.mrc")
    z = np.loadtxt(run_dir / "zvalues.txt", ndmin=2)[:1]
    assert np.abs(run.volumes(z)[0] - reference).max() <= 1e-5 * np.abs(reference).max()


def test_particles_come_from_the_recorded_files(cryodrgn_run, tmp_path, particles_250):
    run_dir = cryodrgn_run(MAIN)
    files = write_cryodrgn_particles(tmp_path / "data", particles_250, 16)
    chosen = np.random.default_rng(0).permutation(250)[:200]
    with open(tmp_path / "data" / "ind.pkl", "wb") as f:
        pickle.dump(chosen, f)
    _edit_config(run_dir, lambda c: c["dataset_args"].update({k: str(v) for k, v in files.items()}, ind=str(tmp_path / "data" / "ind.pkl")))
    run = Run.open(run_dir, device="cpu")
    assert len(run.particles) == 200 and run.apix == pytest.approx(6.0)
    np.testing.assert_array_equal(run.particles.indices, chosen)
    np.testing.assert_allclose(run.particles.rotations, particles_250.rotations[chosen], atol=1e-6)
    np.testing.assert_allclose(run.particles.ctf[:, 0], particles_250.ctf[chosen, 0], rtol=1e-6)
    np.testing.assert_allclose(run.particles.images[[0]][0], particles_250.images[[chosen[0]]][0], rtol=1e-6)


def test_particles_of_a_moved_run_are_found_beside_it(cryodrgn_run, particles_250):
    run_dir = cryodrgn_run(MAIN)
    write_cryodrgn_particles(run_dir.parent, particles_250.subset(np.arange(200)), 16)  # the config names /tmp/drgnwork/sim/…
    run = Run.open(run_dir, device="cpu")
    assert run.particles is not None and len(run.particles) == 200 and run.particles.rotations is not None


def test_missing_particles_are_named_and_a_wrong_count_refused(cryodrgn_run, particles_250):
    run_dir = cryodrgn_run(MAIN)
    with pytest.raises(InputError, match=r"particles are not here: .*not_here/sim/particles.mrcs"):
        particles_from_cryodrgn_run(run_dir)
    with pytest.raises(InputError, match="has 250 particles but the run has latents for 200"):
        Run.open(run_dir, particles=particles_250, device="cpu")


def test_run_particles_train_in_cryonb(cryodrgn_run, tmp_path, particles_250):
    from cryonb.core.training import TrainConfig, Trainer

    run_dir = cryodrgn_run(MAIN)
    files = write_cryodrgn_particles(tmp_path / "data", particles_250.subset(np.arange(200)), 16)
    _edit_config(run_dir, lambda c: c["dataset_args"].update({k: str(v) for k, v in files.items()}))
    particles = particles_from_cryodrgn_run(run_dir)
    assert particles.rotations is not None and particles.ctf is not None and particles.apix == pytest.approx(6.0)
    trainer = Trainer(particles, TrainConfig(zdim=2, enc_width=16, enc_depth=1, dec_width=16, dec_depth=1, batch_size=50, device="cpu"))
    try:
        trainer.fit(1, progress=False)
        assert trainer.embed().shape == (200, 2)
    finally:
        trainer.stop()


def test_abinit_particles_take_the_poses_abinit_found(cryodrgn_run, tmp_path, particles_250):
    run_dir = cryodrgn_run("abinit")
    hundred = particles_250.subset(np.arange(100))
    files = write_cryodrgn_particles(tmp_path / "data", hundred, 16)
    (tmp_path / "data" / "poses.pkl").rename(run_dir / "pose.1.pkl")
    _edit_config(run_dir, lambda c: c["dataset_args"].update(particles=str(files["particles"]), ctf=str(files["ctf"])))
    run = Run.open(run_dir, device="cpu")
    np.testing.assert_allclose(run.particles.rotations, hundred.rotations, atol=1e-6)


def test_recorded_particles_that_cannot_be_read_leave_the_run_usable(cryodrgn_run, particles_250):
    run_dir = cryodrgn_run(MAIN)
    write_cryodrgn_particles(run_dir.parent, particles_250, 16)  # found by name, but 250 particles for 200 latents
    with pytest.warns(UserWarning, match="has 250 particles but the run has latents for 200.*opened without particles"):
        run = Run.open(run_dir, device="cpu")
    assert run.particles is None and run.z.shape == (200, 2) and run.apix == pytest.approx(6.0)


def test_a_cryodrgn_3_run_counts_epochs_from_0(cryodrgn_run):
    run = open_cryodrgn_run(cryodrgn_run("v3_box8_gaussian_fourier"), apix=12.0, device="cpu")
    assert run.config.version.startswith("3.") and run.epoch == 1 and run.z.shape == (100, 2)


def test_sharing_a_cryodrgn_run_as_a_bundle_is_refused_clearly(cryodrgn_run, tmp_path):
    run = open_cryodrgn_run(cryodrgn_run(MAIN), apix=6.0, device="cpu")
    with pytest.raises(InputError, match="cannot be shared as a bundle yet"):
        run.share(tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
