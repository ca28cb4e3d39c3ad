"""Shared bundles: what a bundle holds, that it opens elsewhere without the stack, and that a reader
of a bundle refuses what it cannot trust (newer formats, changed files, pickles, paths outside it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cryonb.core.errors import InputError
from cryonb.core.fourier import fourier_crop
from cryonb.core.io.star import read_blocks
from cryonb.core.particles import load_particles, save_selection, write_star
from cryonb.core.run import Run
from cryonb.core.share import MANIFEST, latent_precision, lossless_in_float16, open_bundle, pick_thumbnails, share, verify
from cryonb.core.share.metadata import file_digest
from cryonb.core.share.preview import preview_volumes
from cryonb.core.simulate import simulate
from cryonb.core.training import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[2]
TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3, device="cpu")
POLYGON = [(-10.0, -10.0), (0.0, -10.0), (0.0, 10.0), (-10.0, 10.0)]  # the left half of the 2D view


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A tiny run trained on a .star (with its .mrcs), shared with a selection, a traversal and clusters."""
    root = tmp_path_factory.mktemp("share")
    (root / "data").mkdir()
    write_star(simulate("hinge", 64, D=16, apix=8.0, snr=1.0, seed=3, progress=False).particles, root / "data" / "particles.star")
    particles = load_particles(root / "data" / "particles.star")
    trainer = Trainer(particles, TrainConfig(**TINY), run_dir=root / "run").fit(1, progress=False)
    run = Run.from_trainer(trainer)
    coords = np.column_stack([run.z[:, 0] - np.median(run.z[:, 0]), run.z[:, 1]]) / run.z.std()
    report = share(run, root / "bundle", coords=coords, clusters=np.arange(64) % 3, selections={"first": np.arange(10)},
                   traversals={"line": run.z[:4]}, thumbnails=20, progress=False)
    return root, run, report


def test_bundle_holds_the_run_without_images(shared):
    root, run, report = shared
    bundle = root / "bundle"
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert {MANIFEST, "README.md", "explore.ipynb", "binder/requirements.txt", "binder/runtime.txt", "run/decoder.pt",
            "run/config.json", "run/z.npy", "run/coords.npy", "run/clusters.npy", "run/traversals/line.npy",
            "selections/first.npy", "particles/particles.star.gz", "thumbnails/images.npy"} <= names
    assert "particles/rows.npy" not in names  # every row of the file, in order
    assert not [n for n in names if n.endswith((".mrcs", ".mrc", ".pkl"))]  # no images, no pickles
    assert report.total == sum((bundle / n).stat().st_size for n in names) < 200_000
    manifest = json.loads((bundle / MANIFEST).read_text())
    assert manifest["cryonb_bundle_version"] == 1 and manifest["latents"]["dtype"] == "float16"
    assert manifest["latents"]["map_change"] < 1e-3 and manifest["particles"]["source"] == "particles.star"
    requirements = (bundle / "binder" / "requirements.txt").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements and "cryonb[widgets]==0.1.0" in requirements
    # Nothing of the sharer's machine: no absolute path in the text files the bundle publishes.
    for name in (MANIFEST, "README.md", "run/config.json", "explore.ipynb"):
        assert str(root) not in (bundle / name).read_text(), name
    notebook = json.loads((bundle / "explore.ipynb").read_text())
    assert any("cryonb.explore(bundle)" in "".join(c["source"]) for c in notebook["cells"])
    assert all(not c.get("outputs") for c in notebook["cells"])


def test_opened_bundle_reproduces_the_run(shared):
    root, run, _ = shared
    bundle = open_bundle(root / "bundle")
    np.testing.assert_allclose(bundle.run.z, run.z, atol=2e-3)  # float16
    np.testing.assert_allclose(bundle.run.volumes(run.z[:2]), run.volumes(run.z[:2]), rtol=1e-5, atol=1e-7)
    assert bundle.run.particles.images is None and len(bundle.run.particles) == 64
    assert list(bundle.selections) == ["first"] and bundle.selections["first"].tolist() == list(range(10))
    np.testing.assert_allclose(bundle.traversals["line"], run.z[:4], atol=1e-6)
    np.testing.assert_array_equal(bundle.clusters, np.arange(64) % 3)
    assert len(bundle.thumbnails.positions) == 20 and bundle.thumbnails.images.shape == (20, 16, 16)
    assert Run.open(root / "bundle").run_dir == root / "bundle"  # Run.open dispatches on a bundle folder
    assert "64 particles" in repr(bundle) and "first (10)" in repr(bundle)


CHILD = """
import sys, numpy as np
from cryonb.core.analysis import lasso_select
from cryonb.core.particles import save_selection
from cryonb.core.run import Run
from cryonb.core.share import open_bundle
bundle_path, polygon, prefix = sys.argv[1], eval(sys.argv[2]), sys.argv[3]
bundle = open_bundle(bundle_path)
assert bundle.run.particles.images is None
positions = lasso_select(bundle.coords, np.array(polygon))
save_selection(bundle.run.particles.subset(positions), prefix)
print("SELECTED", len(positions))
"""


def test_a_fresh_process_without_the_stack_selects_the_same_rows(shared, tmp_path):
    root, run, _ = shared
    positions = np.flatnonzero(open_bundle(root / "bundle").coords[:, 0] < 0)
    assert 5 < len(positions) < 59
    expected = save_selection(run.particles.subset(positions), tmp_path / "original")
    copy = shutil.copytree(root / "bundle", tmp_path / "elsewhere" / "bundle")
    hidden = root / "data-away"
    (root / "data").rename(hidden)  # the particle stack and .star are gone while the bundle is used
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(copy), repr(POLYGON), str(tmp_path / "shared")],
                             capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)
    finally:
        hidden.rename(root / "data")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"SELECTED {len(positions)}" in out.stdout
    mine, theirs = read_blocks(tmp_path / "shared.star"), read_blocks(expected["star"])
    assert list(mine) == list(theirs)
    for name in theirs:
        assert mine[name].equals(theirs[name]), name  # every column, every row: the same particles
    np.testing.assert_array_equal(np.load(tmp_path / "shared.ind.npy"), np.load(expected["ind_npy"]))


def tamper(bundle: Path, relative: str, data: bytes, listed: bool = True) -> None:
    """Replace a bundle file and, as a forger would, its size and checksum in the manifest."""
    (bundle / relative).parent.mkdir(parents=True, exist_ok=True)
    (bundle / relative).write_bytes(data)
    manifest = json.loads((bundle / MANIFEST).read_text())
    if listed:
        manifest["files"][relative] = {"bytes": len(data), "sha256": file_digest(bundle / relative)}
    (bundle / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture
def copy(shared, tmp_path):
    return Path(shutil.copytree(shared[0] / "bundle", tmp_path / "bundle"))


def test_a_newer_bundle_format_is_refused_clearly(copy):
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["cryonb_bundle_version"] = 2
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"newer cryonb .*bundle format 2; this cryonb reads format 1.*Fix: upgrade cryonb"):
        open_bundle(copy)


def test_changed_files_are_refused(copy):
    data = bytearray((copy / "run" / "z.npy").read_bytes())
    data[-1] ^= 0xFF
    (copy / "run" / "z.npy").write_bytes(bytes(data))
    with pytest.raises(InputError, match="z.npy: does not match the checksum"):
        open_bundle(copy)
    (copy / "run" / "z.npy").write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n")
    with pytest.raises(InputError, match="Git LFS pointer.*git lfs pull"):
        open_bundle(copy)


class Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_reader_never_runs_code_from_the_bundle(copy, tmp_path, monkeypatch):
    import pickle

    monkeypatch.chdir(tmp_path)
    weights = torch.load(copy / "run" / "decoder.pt", weights_only=True)
    buffer = __import__("io").BytesIO()
    torch.save({**weights, "evil": Payload()}, buffer)
    tamper(copy, "run/decoder.pt", buffer.getvalue())
    with pytest.raises(InputError, match="decoder.pt: is not a readable weights file"):
        open_bundle(copy)
    tamper(copy, "run/decoder.pt", pickle.dumps(Payload()))
    with pytest.raises(InputError, match="decoder.pt: is not a readable weights file"):
        open_bundle(copy)
    assert not (tmp_path / "PWNED").exists()


def test_pickled_arrays_and_paths_outside_are_refused(shared, tmp_path, monkeypatch):
    import io

    monkeypatch.chdir(tmp_path)
    bundle = Path(shutil.copytree(shared[0] / "bundle", tmp_path / "a"))
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload()], dtype=object), allow_pickle=True)
    tamper(bundle, "selections/first.npy", buffer.getvalue())
    with pytest.raises(InputError, match="first.npy: is not a numeric .npy array"):
        open_bundle(bundle)
    assert not (tmp_path / "PWNED").exists()

    bundle = Path(shutil.copytree(shared[0] / "bundle", tmp_path / "b"))
    (tmp_path / "secret.npy").write_bytes((bundle / "selections" / "first.npy").read_bytes())
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["selections"] = ["../../secret"]
    manifest["files"]["selections/../../secret.npy"] = manifest["files"]["selections/first.npy"]
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="outside the bundle"):
        open_bundle(bundle, check=False)


def test_writing_again_needs_overwrite_and_keeps_a_repository(shared, tmp_path):
    root, run, _ = shared
    out = tmp_path / "repo"
    (out / ".git").mkdir(parents=True)
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # a fresh clone of an empty repository
    share(run, out, thumbnails=0, progress=False)
    with pytest.raises(InputError, match="already holds a bundle.*overwrite=True"):
        share(run, out, progress=False)
    (out / "run" / "stale.npy").write_bytes(b"old")
    report = share(run, out, thumbnails=5, latents="float32", overwrite=True, progress=False)
    assert (out / ".git" / "HEAD").exists() and not (out / "run" / "stale.npy").exists()
    assert np.load(out / "run" / "z.npy").dtype == np.float32 and report.latents["dtype"] == "float32"
    verify(out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds other files"):
        share(run, tmp_path / "other", progress=False)
    assert not list(tmp_path.glob(".*partial*"))  # no half-written bundle left behind


def test_bad_arguments_are_named(shared, tmp_path):
    _, run, _ = shared
    with pytest.raises(InputError, match="selection name '../x' cannot be a file name"):
        share(run, tmp_path / "b", selections={"../x": [1]}, progress=False)
    with pytest.raises(InputError, match=r"not a list of rows of run.z \(0 to 63\)"):
        share(run, tmp_path / "b", selections={"x": [64]}, progress=False)
    with pytest.raises(InputError, match=r"expected \(64,\) integers"):
        share(run, tmp_path / "b", clusters=np.zeros(3, int), progress=False)
    homogeneous = Run(run.model, run.scale, run.apix, None, run.particles, run.config)
    with pytest.raises(InputError, match="homogeneous run"):
        share(homogeneous, tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


def test_float16_latents_only_when_maps_do_not_change(shared, tmp_path):
    _, run, _ = shared
    small = latent_precision(run, run.z)
    assert small["map_change"] < 1e-3 and small["max_error"] <= np.abs(run.z).max() / 1024
    assert latent_precision(run, run.z * 1e7)["fits"] is False  # beyond float16's range
    # Latents far from 0 with a small spread: float16's steps near 100 (1/16) would merge neighbours.
    offset = Run(run.model, run.scale, run.apix, run.z + 100, run.particles, run.config)
    precision = latent_precision(offset, offset.z)
    assert precision["max_error"] > 0.01 * precision["spread"] and not lossless_in_float16(precision)
    report = share(offset, tmp_path / "b", thumbnails=0, progress=False)
    assert report.latents["dtype"] == "float32" and np.load(tmp_path / "b" / "run" / "z.npy").dtype == np.float32
    assert "latents stored as float32 (float16 would move them by" in str(report)
    assert lossless_in_float16(small)


def test_thumbnails_come_from_every_cluster():
    labels = np.repeat([0, 1, 2], [100, 5, 45])
    picked = pick_thumbnails(150, 30, labels)
    assert len(picked) == 30 == len(set(picked.tolist())) and np.all(np.diff(picked) > 0)
    assert np.bincount(labels[picked]).tolist() == [13, 5, 12]  # the small cluster gives all it has
    assert pick_thumbnails(10, 30).tolist() == list(range(10))


def test_preview_maps_are_the_cropped_maps(shared):
    _, run, _ = shared
    z = run.z[:2]
    full, apix = preview_volumes(run, z, box=64)
    assert apix == run.apix and np.allclose(full, run.volumes(z))
    small, apix = preview_volumes(run, z, box=8)
    cropped = fourier_crop(torch.from_numpy(run.volumes(z)), 8, ndim=3).numpy()
    assert small.shape == (2, 8, 8, 8) and apix == pytest.approx(run.apix * 2)
    # The same low-pass map, up to the d-box's Nyquist plane (kept once, not symmetrised).
    assert np.corrcoef(small.ravel(), cropped.ravel())[0, 1] > 0.99
    assert np.linalg.norm(small - cropped) < 0.1 * np.linalg.norm(cropped)


def test_real_star_and_cs_files_map_back_row_for_row(shared, real_data, tmp_path):
    _, run, _ = shared
    for name, columns in [("cryodrgn/relion31.v2.star", "compact"), ("aspire/sample_particles_relion31.star", "all"),
                          ("cryodrgn/empiar_10076_7.cs", "compact")]:
        particles = load_particles(real_data / name, images=False)
        n = len(particles)
        other = Run(run.model, run.scale, run.apix, np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32),
                    particles, run.config)
        out = tmp_path / Path(name).stem
        share(other, out, columns=columns, progress=False)
        opened = open_bundle(out)
        rows = np.array([n - 1, 0, 2])
        mine = save_selection(opened.run.particles.subset(rows), tmp_path / f"{out.name}-bundle")
        theirs = save_selection(particles.subset(rows), tmp_path / f"{out.name}-original")
        np.testing.assert_array_equal(np.load(mine["ind_npy"]), np.load(theirs["ind_npy"]))
        if name.endswith(".cs"):
            a, b = np.load(mine["cs"]), np.load(theirs["cs"])
            assert set(a.dtype.names) <= set(b.dtype.names) and "uid" in a.dtype.names
            for field in a.dtype.names:
                np.testing.assert_array_equal(a[field], b[field])
            continue
        a, b = read_blocks(mine["star"]), read_blocks(theirs["star"])
        table = [k for k in b if "rlnImageName" in b[k]][0]
        assert list(a[table]["rlnImageName"]) == list(b[table]["rlnImageName"])
        shared_columns = [c for c in a[table] if c in b[table]]
        assert a[table][shared_columns].equals(b[table][shared_columns])
        assert (columns == "all") == (list(a[table].columns) == list(b[table].columns))


def test_a_run_on_some_rows_of_a_file_keeps_their_row_numbers(shared, tmp_path):
    root, run, _ = shared
    rows = np.array([40, 3, 17, 8, 60, 22])
    part = Run(run.model, run.scale, run.apix, run.z[rows], run.particles.subset(rows), run.config)
    share(part, tmp_path / "b", thumbnails=0, progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "particles" / "rows.npy"), rows)
    opened = open_bundle(tmp_path / "b")
    np.testing.assert_array_equal(opened.run.particles.indices, rows)
    mine = save_selection(opened.run.particles.subset([1, 4]), tmp_path / "mine")
    theirs = save_selection(part.particles.subset([1, 4]), tmp_path / "theirs")
    assert read_blocks(mine["star"])["particles"].equals(read_blocks(theirs["star"])["particles"])
    assert np.load(mine["ind_npy"]).tolist() == [3, 60]


def test_large_metadata_is_parsed_in_chunks(shared):
    from cryonb.core.share.metadata import load_metadata

    open_bundle(shared[0] / "bundle")  # unpacks its metadata into .cache (run alone, no earlier test has)
    star = next((shared[0] / "bundle" / ".cache").rglob("particles.star"))
    whole = load_particles(star, images=False)
    chunked = load_metadata(star, None, "particles", chunk_rows=7)  # 64 rows: nine files of at most 7
    for name in ("rotations", "shifts", "ctf"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name))
    assert chunked.apix == whole.apix and chunked.source.path == star and len(chunked) == 64


def test_readme_and_notebook_describe_the_bundle(shared):
    bundle = shared[0] / "bundle"
    readme = (bundle / "README.md").read_text()
    assert "https://mybinder.org/v2/gh/OWNER/REPO/HEAD?labpath=explore.ipynb" in readme
    assert "64 particles" in readme and "float16" in readme and "weights_only=True" in readme
    assert readme.count("| `") == 4 and re.search(r"\| `thumbnails` \| \d+\.\d kB \|", readme)  # a size row per part
