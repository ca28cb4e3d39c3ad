"""The setup-time benchmark times each part of a run's setup on a small set."""

from benchmarks.setup_time import main
from cryonb.core.simulate import simulate


def test_each_part_of_the_setup_is_timed(tmp_path):
    simulate("hinge", 40, D=16, apix=8.0, snr=1.0, seed=1, progress=False).save(tmp_path)
    record = main([str(tmp_path), "--device", "cpu", "--steps", "2", "--jsonl", str(tmp_path / "setup.jsonl")])
    parts = ("imports_s", "cuda_start_s", "metadata_s", "images_s", "trainer_s", "first_step_s", "embed_s")
    assert all(record[part] >= 0 for part in parts) and (record["n"], record["box"]) == (40, 16)
    assert record["steady_step_ms"] > 0 and isinstance(record["dynamo_imported"], bool)  # this process may have imported it (other tests); test_adam.py checks a run
    assert (tmp_path / "setup.jsonl").read_text().count("setup_time") == 1
