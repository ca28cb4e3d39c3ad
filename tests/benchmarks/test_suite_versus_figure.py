"""The suite at a glance: each set's two systems side by side, seeds averaged, the assembly set by its mixture over ten starts."""

import json

import pytest

from benchmarks.suite import versus_figure


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def continuous(system, spearman, fsc, seed=0):
    return {"system": system, "set": "adk", "wall_s": 50, "params": {"seed": seed},
            "final": {"spearman_pc1": spearman, "knn_r2": 0.9, "neighbourhood": 0.01, "fsc_auc_mean": fsc}}


def discrete(system, mixture, fsc=None):
    final = {"gmm_ari": 0.1, "gmm_ari_seeds": mixture, "kmeans_ari": 0.2, "neighbourhood": 0.5, "rare_recall": 0.0}
    return {"system": system, "set": "assembly", "wall_s": 50, "final": final | ({"fsc_auc_mean": fsc} if fsc else {})}


def test_rows_average_seeds_and_take_the_mixture_over_ten_starts(tmp_path):
    ours = write(tmp_path / "ours.jsonl", [continuous("cryonb", 0.96, 0.18), continuous("cryonb", 0.98, 0.20, seed=1),
                                           discrete("cryonb", 0.9, 0.2)])
    theirs = write(tmp_path / "theirs.jsonl", [continuous("cryodrgn-4.3.1", 0.95, 0.17), discrete("cryodrgn-4.3.1", 0.8)])
    out = tmp_path / "versus.png"
    table = versus_figure.main([str(out), f"D 128, SNR 0.1={ours},{theirs}"])
    adk, assembly = sorted(table, key=lambda row: row["row"])
    assert adk["row"] == "adk, D 128, SNR 0.1" and adk["latent"] == "spearman_pc1"
    assert abs(adk["cryonb_latents"] - 0.97) < 1e-12 and abs(adk["cryonb_maps"] - 0.19) < 1e-12
    assert (adk["cryodrgn_latents"], adk["cryodrgn_maps"]) == (0.95, 0.17)
    assert assembly["latent"] == "gmm_ari_seeds" and (assembly["cryonb_latents"], assembly["cryodrgn_latents"]) == (0.9, 0.8)
    assert assembly["cryodrgn_maps"] is None  # a record without maps is drawn without its dot, not as 0
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"


def test_a_malformed_condition_or_a_missing_file_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        versus_figure.main([str(tmp_path / "x.png"), "D 128=only-one.jsonl"])
    assert "expected LABEL=CRYONB.jsonl,CRYODRGN.jsonl" in capsys.readouterr().err
    ours = write(tmp_path / "ours.jsonl", [continuous("cryonb", 0.96, 0.18)])
    with pytest.raises(SystemExit):
        versus_figure.main([str(tmp_path / "x.png"), f"D 128={ours},{tmp_path / 'absent.jsonl'}"])
    assert f"{tmp_path / 'absent.jsonl'}: no such file" in capsys.readouterr().err


def test_a_panel_no_run_scored_is_drawn_empty(tmp_path):
    ours = write(tmp_path / "ours.jsonl", [discrete("cryonb", 0.9)])
    theirs = write(tmp_path / "theirs.jsonl", [discrete("cryodrgn-4.3.1", 0.8)])
    (row,) = versus_figure.main([str(tmp_path / "x.png"), f"D 64={ours},{theirs}"])
    assert (row["cryonb_maps"], row["cryodrgn_maps"]) == (None, None) and (tmp_path / "x.png").is_file()
