"""The suite's table: one row per set and system, seeds summarised."""

from benchmarks.suite.report import summary, table


def record(system, value, wall, set_name="adk"):
    return {"system": system, "set": set_name, "wall_s": wall,
            "final": {"spearman_pc1": value, "knn_r2": value, "neighbourhood": 0.01, "fsc_auc_mean": 0.17}}


def test_one_run_is_its_values():
    text = table([record("cryonb", 0.98, 69.4)])
    assert "| adk | cryonb | 0.980 | 0.980 | 0.010 | 0.170 | 69 |" in text


def test_seeds_give_mean_and_spread():
    text = table([record("cryonb", 0.96, 70), record("cryonb", 0.98, 72), record("cryoDRGN", 0.95, 280)])
    assert "| adk | cryonb (2 seeds) | 0.970 ± 0.014 |" in text
    assert "| 71 ± 1 (25 %) |" in text  # the share of cryoDRGN's wall time on the set
    assert "| adk | cryoDRGN | 0.950 | 0.950 | 0.010 | 0.170 | 280 |" in text
    assert "wall s (share of cryoDRGN's)" in text


def test_files_given_a_label_make_one_row(tmp_path):
    import json

    from benchmarks.suite.report import read

    for name, value in (("a.jsonl", 0.96), ("b.jsonl", 0.98), ("c.jsonl", 0.5)):
        (tmp_path / name).write_text(json.dumps(record("cryonb", value, 70)) + "\n")
    records = read([f"{tmp_path / 'a.jsonl'}=flip", f"{tmp_path / 'b.jsonl'}=flip", tmp_path / "c.jsonl"])
    text = table(records)
    assert "| adk | flip (2 seeds) | 0.970 ± 0.014 |" in text
    assert "| adk | cryonb | 0.500 |" in text


def test_a_file_can_give_the_runs_of_one_system(tmp_path):
    import json

    from benchmarks.suite.report import read

    path = tmp_path / "paired.jsonl"
    path.write_text("".join(json.dumps(record(system, value, 70)) + "\n"
                            for system, value in (("cryonb", 0.96), ("cryonb [average=0.999]", 0.98))))
    text = table(read([f"{path}#cryonb [average=0.999]=averaged", f"{path}#cryonb"]))
    assert "| adk | averaged | 0.980 |" in text and "| adk | cryonb | 0.960 |" in text
    accuracy = table(read([path]), wall=False)  # runs that shared a GPU: no wall time
    assert "wall" not in accuracy and "| adk | cryonb | 0.960 | 0.960 | 0.010 | 0.170 |\n" in accuracy
    assert accuracy.splitlines()[1] == "|---" * 6 + "|"


def test_summary_is_the_sample_standard_deviation():
    assert summary([1.0, 2.0, 3.0], 2) == "2.00 ± 1.00"


def test_the_share_is_of_cryodrgn_on_the_same_set():
    text = table([record("cryonb", 0.9, 50, "adk"), record("cryodrgn-4.3.1", 0.9, 200, "adk"),
                  record("cryonb", 0.9, 50, "ribosome_motion")])
    assert "| adk | cryonb | 0.900 | 0.900 | 0.010 | 0.170 | 50 (25 %) |" in text
    assert "| ribosome_motion | cryonb | 0.900 | 0.900 | 0.010 | 0.170 | 50 |" in text  # no cryoDRGN run there


def test_a_rescored_run_has_no_wall_time_and_no_share():
    rescored = {**record("cryodrgn-4.3.1", 0.95, None), "rescored": True}
    text = table([record("cryonb", 0.9, 50), rescored, record("cryodrgn-4.3.1", 0.95, 200)])
    assert "| adk | cryonb | 0.900 | 0.900 | 0.010 | 0.170 | 50 (25 %) |" in text  # the timed run alone
    assert "| adk | cryodrgn-4.3.1 (2 seeds) | 0.950 ± 0.000 | 0.950 ± 0.000 | 0.010 ± 0.000 | 0.170 ± 0.000 | 200 |" in text
    assert "| — |" in table([rescored])


def test_probe_figure_draws_runs_with_all_three_scores(tmp_path):
    import json

    import pytest

    from benchmarks.suite import probe_figure

    full = {"system": "cryonb", "set": "adk", "params": {"seed": 1, "overrides": {"dec_depth": 4}},
            "final": {"fsc_auc_mean": 0.17, "knn20_z_fsc_auc_mean": 0.175, "ideal_z_fsc_auc_mean": 0.18}}
    flat = {"system": "cryodrgn-4.3.1", "set": "adk", "seed": 0, "fsc_auc_mean": 0.176,
            "knn20_z_fsc_auc_mean": 0.179, "ideal_z_fsc_auc_mean": 0.183}
    plain = {"system": "cryonb", "set": "adk", "final": {"fsc_auc_mean": 0.17}}
    assert probe_figure.probe_values(full) == ("cryonb dec_depth=4, seed 1", [0.17, 0.175, 0.18])
    assert probe_figure.probe_values(flat) == ("cryodrgn-4.3.1 defaults, seed 0", [0.176, 0.179, 0.183])
    assert probe_figure.probe_values(plain) is None
    records = tmp_path / "r.jsonl"
    records.write_text("\n".join(json.dumps(r) for r in (full, flat, plain)) + "\n")
    probe_figure.main([str(tmp_path / "probes.png"), str(records)])
    assert (tmp_path / "probes.png").stat().st_size > 10_000
    with pytest.raises(SystemExit, match="no assembly record"):
        probe_figure.main([str(tmp_path / "none.png"), str(records), "--set", "assembly"])


def test_holdout_data_view_keeps_each_particles_rows():
    """The held-out probe's views of one prepared set: the chosen particles' images, poses and CTF,
    in the chosen order, with the whole set's scale."""
    import numpy as np

    from benchmarks.suite.holdout_probe import data_view
    from cryonb.core.imagedata import ImageData
    from cryonb.core.simulate import simulate

    particles = simulate("hinge", n=12, D=16, seed=1, progress=False).particles
    data = ImageData(particles)
    idx = np.array([7, 2, 11])
    view = data_view(data, idx)
    assert len(view) == 3 and view.scale == data.scale and len(data) == 12
    for name in ("images", "rotations", "ctf"):
        assert (getattr(view, name) == getattr(data, name)[idx]).all()


def test_a_metric_some_runs_lack_is_a_dash():
    def assembly(gmm_seeds=None):
        final = {"gmm_ari": 0.97, "kmeans_ari": 0.96, "neighbourhood": 0.95, "rare_recall": 0.0, "fsc_auc_mean": 0.2}
        return {"system": "cryonb", "set": "assembly", "wall_s": 50,
                "final": final if gmm_seeds is None else {**final, "gmm_ari_seeds": gmm_seeds}}

    assert "| assembly | cryonb | 0.970 | 0.880 | 0.960 |" in table([assembly(0.88)])
    assert "| assembly | cryonb (2 seeds) | 0.970 ± 0.000 | — | 0.960 ± 0.000 |" in table([assembly(0.88), assembly()])


def test_a_column_of_small_values_keeps_its_fourth_decimal():
    small = [{**record("cryonb", 0.9, 50), "final": {**record("cryonb", 0.9, 50)["final"], "neighbourhood": v}}
             for v in (0.0050, 0.0054)]
    text = table(small + [{**small[0], "system": "cryodrgn-4.3.1", "final": {**small[0]["final"], "neighbourhood": 0.0055}}])
    assert "| 0.0052 ± 0.0003 |" in text and "| 0.0055 |" in text
    assert "| 0.900 ± 0.000 |" in text  # the other columns keep three
    zeros = [{**r, "final": {**r["final"], "neighbourhood": 0.0}} for r in small]
    assert "| 0.000 ± 0.000 |" in table(zeros)  # a column of zeros (no rare state found) too
