from dataclasses import replace

import numpy as np
import pytest
import torch

from cryonb.core.abinit import MIRROR, Abinit, AbinitConfig, align_map, align_poses, start_seed
from cryonb.core.abinit_starts import reproduced, starts_agreement
from cryonb.core.errors import InputError
from cryonb.core.phantoms import hinge
from cryonb.core.projection import sample_volume
from cryonb.core.rotations import random_rotations

TINY = dict(device="cpu", dec_width=32, dec_depth=1, enc_width=32, enc_depth=1, batch_size=16, lr=1e-3)
QUICK = AbinitConfig(pretrain_images=16, search_epochs=1, map_epochs=1, base_resolution=0, iterations=1, keep=2, radius=(3, 6), shift_extent=1.0, shifts=3)


@pytest.fixture(scope="module")
def simulation():
    from cryonb.core.simulate import simulate

    return simulate(hinge(16)[None], n=48, snr=10.0, shift_sigma=0.5, seed=2, progress=False)


def blind(particles):
    """The particles without poses or shifts: what an ab initio run starts from."""
    return type(particles)(particles.images, None, None, particles.ctf, particles.apix)


def test_align_poses_finds_the_rotation_and_the_hand():
    g = torch.Generator().manual_seed(0)
    R = random_rotations(300, g).double()
    A = random_rotations(1, g).double()[0]
    estimated = R @ A
    estimated[:30] = random_rotations(30, g).double()  # a tenth of wrong poses
    direct = align_poses(estimated.numpy(), R.numpy())
    assert not direct.mirrored
    np.testing.assert_allclose(direct.rotation, A, atol=1e-6)
    assert direct.median_error < 0.05 and direct.median_error_other_hand > 30
    np.testing.assert_allclose(direct.apply(R.numpy())[30:], estimated[30:], atol=1e-6)
    mirrored = align_poses((MIRROR @ R @ MIRROR @ A).numpy(), R.numpy())
    assert mirrored.mirrored and mirrored.median_error < 0.05 and mirrored.median_error_other_hand > 30
    with pytest.raises(ValueError):
        align_poses(R[:5].numpy(), R.numpy())


def test_align_map_undoes_a_rotation_and_a_mirror():
    D = 24
    V = hinge(D)
    g = torch.Generator().manual_seed(1)
    R = random_rotations(50, g).double()
    A = random_rotations(1, g).double()[0]
    # The map that the poses J R J A reconstruct: V_est(q) = V(J A q).
    k = torch.arange(D, dtype=torch.float64) - D // 2
    z, y, x = torch.meshgrid(k, k, k, indexing="ij")
    points = torch.stack([x, y, z], -1).reshape(-1, 3)
    estimated_map = sample_volume(V, (points @ A.T @ MIRROR).float()).reshape(D, D, D)
    alignment = align_poses((MIRROR @ R @ MIRROR @ A).numpy(), R.numpy())
    back = align_map(estimated_map.numpy(), alignment)
    before = np.corrcoef(estimated_map.numpy().ravel(), V.numpy().ravel())[0, 1]
    after = np.corrcoef(back.ravel(), V.numpy().ravel())[0, 1]
    assert after > 0.98 and before < 0.8


def test_phases_fill_the_pose_table_and_write_poses(simulation, tmp_path):
    from cryonb.core.io.pickles import read_cryodrgn_poses
    from cryonb.core.particles import load_particles

    ab = Abinit(blind(simulation.particles), zdim=0, settings=QUICK, run_dir=tmp_path / "run", **TINY)
    assert ab.trainer.config.poses == "table" and ab.phase == "pretrain"
    assert (ab.pretrain_steps, ab.search_end) == (1, 7)
    ab.fit(1, progress=False)  # 3 batches: pretrain, search, search
    assert ab.history[-1]["phase"] == "search" and "search_error" in ab.history[-1]
    assert "poses_moved" not in ab.history[-1]  # told once the search epoch has ended
    assert ab.phase == "search"
    idx = torch.arange(16)
    result = ab.search(idx)
    assert result.rotations.shape == (16, 3, 3) and result.shifts.abs().max() <= 1.0
    ab.fit(1, progress=False)  # search, map, map
    assert ab.history[-1]["phase"] == "map"
    assert ab.history[-1]["poses_moved"] > 60  # from the pretraining's random poses: far (126° is random's median)
    ab.fit(1, progress=False)  # map, refine, refine
    assert ab.phase == "refine" and ab.history[-1]["phase"] == "refine"
    rotations, shifts = ab.poses()
    assert rotations.shape == (48, 3, 3) and shifts.shape == (48, 2)
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-5)
    assert not np.allclose(rotations, rotations[:1])  # every particle got its own pose
    paths = ab.write_poses(tmp_path / "poses.star", tmp_path / "poses.pkl")
    back = load_particles(paths["star"])
    np.testing.assert_allclose(back.rotations, rotations, atol=1e-4)
    np.testing.assert_allclose(back.shifts, shifts, atol=1e-3)
    np.testing.assert_allclose(back.ctf, simulation.particles.ctf, rtol=1e-5)
    R, t = read_cryodrgn_poses(paths["pickle"], 16)
    np.testing.assert_allclose(R, rotations, atol=1e-6)
    np.testing.assert_allclose(t, shifts, atol=1e-5)
    alignment = ab.align(simulation.particles.rotations)
    assert alignment.errors.shape == (48,)


def test_a_run_resumes_in_its_phase(simulation, tmp_path):
    ab = Abinit(blind(simulation.particles), zdim=2, settings=QUICK, run_dir=tmp_path / "run", epochs=3, **TINY)
    assert ab.trainer.config.latents == "table"
    ab.fit(1, progress=False)
    rotations, shifts = ab.poses()
    again = Abinit.from_run(tmp_path / "run", blind(simulation.particles))
    assert again.settings == QUICK
    assert again.trainer.step_count == ab.trainer.step_count and again.phase == ab.phase == "search"
    np.testing.assert_allclose(again.poses()[0], rotations)
    np.testing.assert_allclose(again.poses()[1], shifts)
    again.fit(1, progress=False)
    assert again.history[-1]["phase"] == "map" and again.embed().shape == (48, 2)


def test_radius_marches_over_search_epochs_and_poses_are_held_until_refinement(simulation):
    # one start: the poses set by hand below must not be swapped for another start's at the choice
    settings = AbinitConfig(pretrain_images=48, search_epochs=3, map_epochs=1, base_resolution=0, iterations=1, keep=2, shift_extent=0,
                            starts=1)
    ab = Abinit(blind(simulation.particles), zdim=0, settings=settings, **TINY)
    bpe = ab.trainer.batches_per_epoch  # 3; pretraining is one epoch, then (search, map) x 3
    assert settings.radii(16) == (1.5, 4.0)  # 12 and 32 pixels at a box of 128
    assert [ab.phase_at(bpe * e) for e in range(8)] == ["pretrain"] + ["search", "map"] * 3 + ["refine"]
    assert [ab.search_radius(bpe * (1 + 2 * e)) for e in range(3)] == [(1.5, 1.5), (1.5, 2.75), (1.5, 4.0)]
    assert ab.loss_radius(0) is None and ab.loss_radius(bpe * 4) == 2.75 and ab.loss_radius(bpe * 7) is None
    ab.fit(3, progress=False)  # pretrain, search, map
    assert ab.trainer._fit_radius == 1.5 and len(ab.trainer._pixels) < len(ab.trainer.model.half)
    held = ab.poses()[0]
    ab.fit(3, progress=False)  # search, map, search: the poses move when searched
    searched = ab.poses()[0]
    assert not np.allclose(held, searched)
    ab.trainer.model.poses.assign(torch.arange(48), torch.as_tensor(held))
    ab.fit(1, progress=False)  # the last map epoch: poses held, all frequencies fitted again after it
    np.testing.assert_array_equal(ab.poses()[0], held)
    ab.fit(1, progress=False)  # refine: descent moves the poses, at all frequencies
    assert ab.history[-1]["phase"] == "refine" and ab.trainer._pixels is None
    assert np.abs(ab.poses()[0] - held).max() > 1e-4


def test_batches_searched_together_each_get_their_own_rows(simulation, monkeypatch):
    from cryonb.core.posesearch import PoseSearchResult

    ab = Abinit(blind(simulation.particles), zdim=0, settings=replace(QUICK, starts=1, search_images=32), **TINY)
    groups, batches = [], []

    def search(idx, grid_rotation=None):  # each particle's "pose": its own number, as a shift
        groups.append((ab.trainer.step_count, len(idx)))
        code = (idx + 1).float()
        n = len(idx)
        return PoseSearchResult(torch.eye(3).expand(n, 3, 3), torch.stack([code, -code], 1), torch.zeros(n), torch.zeros(n, dtype=torch.long))

    monkeypatch.setattr(ab, "search", search)
    ab.trainer.before_step.append(lambda t, idx: batches.append((t.step_count, idx.clone())))
    ab.fit(2, progress=False)  # steps: 0 pretrains; 1, 2 (epoch 0) and 3 (epoch 1) search; 4, 5 fit the map
    # Two batches at once, up to the trainer's epoch's end; then the search epoch's last batch alone
    assert groups == [(1, 32), (3, 16)]
    searched = torch.cat([idx for step, idx in batches if 1 <= step <= 3])
    shifts = ab.trainer.model.poses.shift.weight.detach()
    np.testing.assert_array_equal(shifts[searched], torch.stack([searched + 1.0, -searched - 1.0], 1))


def test_settings_are_checked(simulation, tmp_path):
    with pytest.raises(InputError, match="keep"):
        AbinitConfig(keep=0).validate()
    with pytest.raises(InputError, match="radius"):
        AbinitConfig(radius=(8, 4)).validate()
    with pytest.raises(InputError, match="abinit.json"):
        Abinit.from_run(tmp_path)


@pytest.mark.slow
def test_search_against_a_fitted_map_finds_the_poses_again():
    # The loop's consistency on CPU: a map fitted at the true poses (the pose table held still),
    # then every particle searched against it, gives poses within a few degrees after alignment.
    from cryonb.core.simulate import simulate
    from cryonb.core.so3grid import step_degrees

    sim = simulate(hinge(24)[None], n=200, snr=10.0, seed=1, progress=False)
    settings = AbinitConfig(pretrain_images=0, search_epochs=0, base_resolution=1, iterations=3, keep=4, radius=(4, 10), shift_extent=0)
    ab = Abinit(blind(sim.particles), zdim=0, settings=settings, **{**TINY, "dec_width": 64, "dec_depth": 2, "batch_size": 8, "lr": 2e-3, "table_lr": 1e-9})  # poses held at the truth
    idx = torch.arange(200)
    ab.trainer.model.poses.assign(idx, torch.as_tensor(sim.particles.rotations))
    ab.fit(5, progress=False)
    found = torch.cat([ab.search(part).rotations for part in idx.split(50)])
    alignment = align_poses(found.numpy(), sim.particles.rotations)
    # Measured 7.6° (the last round's step is 3.75°; the same search against the exact map finds
    # poses within 1°, tests/core/test_posesearch.py): the small map fitted on a CPU limits it.
    assert alignment.median_error < 2.5 * step_degrees(4)
    assert alignment.median_error_other_hand > 30


@pytest.mark.slow
def test_from_scratch_the_poses_converge_to_a_few_degrees(one_torch_thread):  # the measurement's conditions
    # No poses at all: 2,000 images of box 32 (SNR 10, CTF). Before the search epochs alternated with
    # map epochs under a marching frequency limit, this stalled at a median error of 47-60°.
    # One start converges to 4.8-5.1° (seeds 0 and 1); the same search against the true map gives
    # 4.0°: the last round's grid step is 3.75°, so 2 steps is a converged search, far from a stall.
    # Not every start converges at this small size: one start of seed 2 stalls at 35°, of seed 3 at
    # 15°. Four starts, the best kept after three search cycles (the default), converge for seeds 0-3
    # (docs/benchmarks.md); seed 2, whose first start stalls, is the one CI runs (190-230 s in its full run with
    # the decoder at every candidate's pixels, about 100 s with the drawn map of the search's default).
    from cryonb.core.fsc import fsc
    from cryonb.core.simulate import simulate
    from cryonb.core.so3grid import step_degrees

    sim = simulate(hinge(32)[None], n=2000, snr=10.0, seed=0, progress=False)
    settings = AbinitConfig(pretrain_images=2000, search_epochs=6, map_epochs=2, base_resolution=1, iterations=3, keep=4,
                            shift_extent=0)
    ab = Abinit(blind(sim.particles), zdim=0, settings=settings, device="cpu", dec_width=64, dec_depth=2, batch_size=32,
                lr=2e-3, epochs=20, seed=2)
    ab.fit(20, progress=False)
    assert ab.history[-1]["phase"] == "refine"
    alignment = ab.align(sim.particles.rotations)
    assert alignment.median_error < 2 * step_degrees(4)
    assert alignment.median_error_other_hand > 30
    curve = fsc(align_map(ab.volume(), alignment), sim.volumes[0], apix=sim.particles.apix)
    assert curve.resolution(0.5) < 16  # Å (the blob of the pretraining: 34 Å; Nyquist 6 Å)
    # Settled, as cryonb abinit judges it: 7° in the last search epoch, where runs that failed turned 29°.
    from cryonb.core.abinit import UNSETTLED_DEGREES

    moved = [row["poses_moved"] for row in ab.history if "poses_moved" in row]
    assert len(moved) == settings.search_epochs and moved[0] > 100 and moved[-1] < UNSETTLED_DEGREES / 2
    # Found by more than the kept start: the nearest other start's poses 9.4° away, where wrong ones lay 58-110°.
    from cryonb.core.abinit_starts import SAME_POSES_DEGREES

    chosen = next(row for row in ab.history if "start_agreement" in row)
    assert sorted(chosen["start_agreement"])[1] < SAME_POSES_DEGREES / 2


STARTS = AbinitConfig(pretrain_images=48, search_epochs=2, map_epochs=1, base_resolution=0, iterations=1, keep=2,
                      radius=(3, 6), shift_extent=0, starts=3, start_cycles=1, start_images=24)


def test_several_starts_keep_the_one_that_explains_the_images_best(simulation):
    ab = Abinit(blind(simulation.particles), zdim=0, settings=STARTS, **TINY)
    assert ab.choice_epoch == 3 and ab.choice_pending and len(ab._starts) == 2  # pretrain, search, map
    assert [s.trainer.config.seed for s in ab._starts] == [start_seed(0, 1), start_seed(0, 2)]
    assert all(s.trainer.data is ab.trainer.data for s in ab._starts)  # one copy of the images
    ab.fit(2, progress=False)
    assert [s.trainer.epoch for s in ab._starts] == [2, 2] and "start" not in ab.history[-1]
    ab.fit(2, progress=False)
    chosen = ab.history[2]
    assert ab.trainer.epoch == 4 and not ab.choice_pending and ab._starts == []
    assert len(chosen["start_scores"]) == 3 and chosen["start"] == int(np.argmin(chosen["start_scores"]))
    assert len(chosen["start_agreement"]) == 3 and chosen["start_agreement"][chosen["start"]] == 0.0
    assert "start" not in ab.history[-1] and ab.history[-1]["phase"] == "search"


def test_starts_that_found_the_same_poses_agree_whatever_their_frame_and_hand():
    g = torch.Generator().manual_seed(3)
    found = random_rotations(2000, g).double()
    frame = random_rotations(1, g)[0].double()
    same_other_frame = found @ frame
    mirrored = MIRROR @ found @ MIRROR @ frame
    elsewhere = random_rotations(2000, g).double()
    agreement = starts_agreement([same_other_frame, found, mirrored, elsewhere], best=1)
    assert agreement[1] == 0.0 and agreement[0] < 0.05 and agreement[2] < 0.05
    assert agreement[3] > 60  # unrelated poses: about the median angle of a random rotation (~126°), less what a fit absorbs
    assert reproduced({"start": 1, "start_agreement": agreement}, classes=False)
    assert not reproduced({"start": 1, "start_agreement": [agreement[3], 0.0]}, classes=False)
    assert reproduced({"start": 1, "start_agreement": [agreement[3], 0.0]}, classes=True) is None  # a frame per class


def test_the_chosen_start_is_continued(simulation, monkeypatch):
    # Start 2 scores best: the run continues from its state (its poses and map at the choice).
    monkeypatch.setattr(Abinit, "start_score", lambda self, idx, turn=None: float(self.trainer.config.seed != start_seed(0, 2)))
    ab = Abinit(blind(simulation.particles), zdim=0, settings=STARTS, **TINY)
    ab.fit(3, progress=False)
    alone = Abinit(blind(simulation.particles), zdim=0, settings=replace(STARTS, starts=1), **{**TINY, "seed": start_seed(0, 2)})
    alone.fit(3, progress=False)
    assert ab.history[-1]["start"] == 2 and ab.history[-1]["start_scores"] == [1.0, 1.0, 0.0]
    np.testing.assert_array_equal(ab.poses()[0], alone.poses()[0])
    np.testing.assert_array_equal(ab.volume(), alone.volume())
    assert [row["loss"] for row in ab.history] == [row["loss"] for row in alone.history]
    assert ab.search_errors == alone.search_errors and ab.search_moves == alone.search_moves


def test_several_starts_in_pieces_and_resumed_equal_one_call(simulation, tmp_path):
    whole = Abinit(blind(simulation.particles), zdim=0, settings=STARTS, **TINY)
    whole.fit(5, progress=False)
    pieces = Abinit(blind(simulation.particles), zdim=0, settings=STARTS, run_dir=tmp_path / "run", **TINY)
    pieces.fit(1, progress=False)
    pieces.fit(1, progress=False)
    assert sorted(p.name for p in (tmp_path / "run" / "starts").iterdir()) == ["1", "2"]
    again = Abinit.from_run(tmp_path / "run", blind(simulation.particles))  # resumed before the choice
    assert again.choice_pending and [s.trainer.epoch for s in again._starts] == [2, 2]
    again.fit(2, progress=False)
    assert not (tmp_path / "run" / "starts").exists()  # dropped once the choice is in a checkpoint
    again = Abinit.from_run(tmp_path / "run", blind(simulation.particles))  # resumed after it
    assert not again.choice_pending and again._starts == []
    again.fit(1, progress=False)
    assert again.history[2]["start"] == whole.history[2]["start"]
    assert again.history[2]["start_scores"] == whole.history[2]["start_scores"]
    np.testing.assert_allclose(again.poses()[0], whole.poses()[0], atol=1e-6)
    np.testing.assert_allclose([r["loss"] for r in again.history], [r["loss"] for r in whole.history], rtol=1e-6)


def test_a_run_written_before_several_starts_reads_as_one_start(tmp_path):
    import json
    from dataclasses import asdict

    settings = {k: v for k, v in asdict(STARTS).items() if k != "starts"}
    (tmp_path / "abinit.json").write_text(json.dumps(settings))
    assert AbinitConfig.read(tmp_path).starts == 1
    with pytest.raises(InputError, match="starts"):
        AbinitConfig(starts=0).validate()


def test_a_start_interrupted_in_its_epoch_catches_up_when_the_run_goes_on(simulation):
    whole = Abinit(blind(simulation.particles), zdim=0, settings=STARTS, **TINY)
    whole.fit(4, progress=False)
    ab = Abinit(blind(simulation.particles), zdim=0, settings=STARTS, **TINY)
    other = ab._starts[0].trainer

    def ctrl_c(event, trainer):  # Ctrl-C during start 1's first step
        if event == "step" and trainer.step_count == 1:
            trainer.interrupted = True
            trainer.stop(wait=False)

    other.listeners.append(ctrl_c)
    ab.fit(3, progress=False)
    assert ab.trainer.interrupted and ab.trainer.epoch == 1 and other.step_count == 1
    other.listeners.remove(ctrl_c)
    ab.fit(3, progress=False)
    assert ab.trainer.epoch == 4 and not ab.choice_pending
    assert ab.history[2]["start_scores"] == whole.history[2]["start_scores"]
    np.testing.assert_array_equal(ab.poses()[0], whole.poses()[0])


def test_without_pretraining_or_search_there_is_one_start(simulation):
    settings = replace(STARTS, pretrain_images=0, search_epochs=0)
    ab = Abinit(blind(simulation.particles), zdim=0, settings=settings, **TINY)
    assert ab.choice_epoch == 0 and not ab.choice_pending and ab._starts == []
    ab.fit(1, progress=False)
    assert ab.history[-1]["phase"] == "refine" and "start" not in ab.history[-1]


def test_classes_are_searched_written_and_resumed(simulation, tmp_path):
    settings = replace(QUICK, classes=2, starts=1)
    ab = Abinit(blind(simulation.particles), settings=settings, run_dir=tmp_path / "run", **TINY)
    assert (ab.trainer.config.zdim, ab.trainer.config.latents) == (2, "class")
    first = ab.classes()
    assert set(first) == {0, 1}  # random at first
    ab.fit(1, progress=False)  # pretrain, then two batches whose classes and poses a search chose
    searched = ab.classes()
    assert (searched != first).any()
    result = ab.search(torch.arange(16, 32))
    assert result.labels.shape == (16,) and set(result.labels.tolist()) <= {0, 1}
    np.testing.assert_array_equal(ab.trainer.embed(), np.eye(2)[searched])  # the decoder sees one-hot classes
    again = Abinit.from_run(tmp_path / "run", blind(simulation.particles))
    assert again.settings.classes == 2
    np.testing.assert_array_equal(again.classes(), searched)
    with pytest.raises(InputError, match="one-hot latents of length 2, not zdim=3"):
        Abinit(blind(simulation.particles), zdim=3, settings=settings, **TINY)
    with pytest.raises(InputError, match="no classes"):
        Abinit(blind(simulation.particles), zdim=0, settings=replace(QUICK, starts=1), **TINY).classes()
