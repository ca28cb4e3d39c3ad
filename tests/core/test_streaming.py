"""Streamed training data: the same batches and losses as in memory, a cache reused only when it
matches, rebuilt when damaged, and host memory bounded by the batches in flight."""

import gc
import json

import numpy as np
import psutil
import pytest
import torch

from cryonb.core.errors import InputError
from cryonb.core.io.mrc import write_stack
from cryonb.core.particles import ParticleSet, load_particles
from cryonb.core.simulate import simulate
from cryonb.core.image_cache import ImageCache
from cryonb.core.streaming import StreamedImageData, should_stream, transform_bytes
from cryonb.core.training import ImageData, Trainer, TrainConfig, image_data

TINY = dict(zdim=2, enc_width=32, enc_depth=2, dec_width=32, dec_depth=2, batch_size=16, lr=1e-3)


@pytest.fixture(scope="module")
def particles():
    return simulate("hinge", 96, D=16, apix=8.0, snr=1.0, seed=1, progress=False).particles


def test_streamed_batches_equal_in_memory(particles, tmp_path):
    memory = ImageData(particles, box=12)
    streamed = StreamedImageData(particles, box=12, cache_dir=tmp_path, progress=False, chunk=40)
    assert streamed.scale == memory.scale and (streamed.D, streamed.apix, len(streamed)) == (memory.D, memory.apix, len(memory))
    assert torch.equal(streamed.freqs, memory.freqs) and len(streamed.half) == len(memory.half)
    idx = torch.tensor([5, 90, 0, 33, 34, 35, 7])
    for got, want in zip(streamed.batch(idx), memory.batch(idx)):  # read synchronously
        assert torch.equal(got, want)
    order = np.random.default_rng(0).permutation(len(particles))
    streamed.set_order(order, 16, 6)
    for position in (0, 1, 2, 4):  # staged by the prefetching reader (and a jump, as on resume)
        idx = torch.as_tensor(order[position * 16 : (position + 1) * 16])
        streamed.stage(idx, position)
        assert torch.equal(streamed.batch(idx)[0], memory.images[idx])
    streamed.close()
    assert torch.equal(streamed.images[10:50], memory.images[10:50])


@pytest.mark.parametrize("dtype, tol", [("float16", 2e-3), ("bfloat16", 1e-2)])
def test_half_precision_caches_are_close(particles, tmp_path, dtype, tol):
    memory = ImageData(particles)
    streamed = StreamedImageData(particles, cache_dir=tmp_path, dtype=dtype, progress=False)
    assert streamed.cache.path.stat().st_size < 0.6 * transform_bytes(len(particles), 16)
    got = streamed.images[:]
    assert got.dtype == torch.complex64
    assert (got - memory.images).abs().max() < tol * memory.images.abs().max()
    assert np.load(streamed.cache.path, mmap_mode="r").shape == (96, len(memory.half), 2)


def test_training_losses_match_in_memory(particles, tmp_path):
    memory = Trainer(particles, TrainConfig(**TINY, stream=False)).fit(2, progress=False)
    streamed = Trainer(particles, TrainConfig(**TINY, stream=True), run_dir=tmp_path / "run")
    assert isinstance(streamed.data, StreamedImageData)
    assert streamed.data.cache.path.parent == tmp_path / "run" / "cache"
    streamed.fit(2, progress=False)
    assert [h["loss"] for h in streamed.history] == [h["loss"] for h in memory.history]
    assert streamed.steps == memory.steps
    np.testing.assert_array_equal(streamed.embed(batch_size=40), memory.embed(batch_size=40))


def test_no_reader_thread_outlives_a_fit(particles, tmp_path):
    """A fit stopped mid-epoch, its reader waiting for a free buffer, leaves no reader thread (one
    still alive at exit can abort the process); the next fit reads on from there, as in one run."""
    config = TrainConfig(**{**TINY, "batch_size": 8}, stream=True, cache_dir=str(tmp_path))  # 12 batches, 5 buffers
    whole = Trainer(particles, config).fit(1, progress=False)
    stopped, readers = Trainer(particles, config), []

    def stop_after_two(event, trainer):
        if event == "step" and trainer.step_count == 2:
            readers.append(trainer.data._loader)
            trainer.stop(wait=False)

    stopped.listeners.append(stop_after_two)
    stopped.fit(1, progress=False)
    assert stopped.position == 2 and readers[0] is not None and not readers[0].is_alive()
    stopped.fit(1, progress=False)
    assert stopped.steps == whole.steps


def test_cache_is_reused_and_rebuilt_on_mismatch(particles, tmp_path):
    first = ImageCache.open(tmp_path, particles, 16, progress=False)
    mtime = first.path.stat().st_mtime_ns
    again = ImageCache.open(tmp_path, particles, 16, progress=False)
    assert again.path.stat().st_mtime_ns == mtime and again.scale == first.scale
    shifted = particles.subset(slice(None))
    shifted.shifts = shifted.shifts + 0.5
    other = ImageCache.open(tmp_path, shifted, 16, progress=False)  # same file name, different data
    assert other.path == first.path and other.path.stat().st_mtime_ns != mtime
    assert other.meta["fingerprint"] != first.meta["fingerprint"]
    fewer = ImageCache.open(tmp_path, particles.subset(slice(0, 50)), 16, progress=False)
    assert fewer.n == 50
    assert ImageCache.open(tmp_path, particles, 12, progress=False).path.name == "images_12_complex64.npy"


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_sidecar", "bad_sidecar"])
def test_damaged_cache_is_detected_and_rebuilt(particles, tmp_path, damage):
    cache = ImageCache.open(tmp_path, particles, 16, progress=False)
    good = np.load(cache.path).copy()
    sidecar = cache.path.with_suffix(".json")
    if damage == "truncate":  # a partial file
        with open(cache.path, "r+b") as f:
            f.truncate(cache.path.stat().st_size // 2)
    elif damage == "flip":  # same size, other bytes in a sampled row
        with open(cache.path, "r+b") as f:
            f.seek(cache.offset + 5)
            f.write(b"\xff\x00\xff")
    elif damage == "no_sidecar":  # a crash before the sidecar was written
        sidecar.unlink()
    else:
        sidecar.write_text("{not json")
    assert ImageCache._existing(cache.path, sidecar, {}) is None or damage == "none"
    rebuilt = ImageCache.open(tmp_path, particles, 16, progress=False)
    np.testing.assert_array_equal(np.load(rebuilt.path), good)
    assert json.loads(sidecar.read_text())["n"] == len(particles)


def test_the_trainer_chooses_streaming_from_the_data_size(particles, tmp_path, monkeypatch):
    import cryonb.core.streaming as streaming

    assert not should_stream(len(particles), 16, "cpu")
    assert isinstance(image_data(particles, TrainConfig(), torch.device("cpu")), ImageData)
    monkeypatch.setattr(streaming, "free_memory", lambda device: (2 * transform_bytes(96, 16) - 1, None))
    assert should_stream(len(particles), 16, "cpu")
    data = image_data(particles, TrainConfig(cache_dir=str(tmp_path)), torch.device("cpu"))
    assert isinstance(data, StreamedImageData) and data.cache.path.parent == tmp_path
    assert isinstance(image_data(particles, TrainConfig(stream=False), torch.device("cpu")), ImageData)


def test_in_memory_data_that_cannot_fit_is_a_clear_error(particles, monkeypatch):
    import cryonb.core.streaming as streaming

    monkeypatch.setattr(streaming, "free_memory", lambda device: (transform_bytes(96, 16) // 2, None))
    with pytest.raises(InputError, match="need .* GiB, more than the host memory.*Fix: stream them"):
        Trainer(particles, TrainConfig(**TINY, stream=False))
    monkeypatch.setattr(streaming, "free_memory", lambda device: (10**12, transform_bytes(96, 16) // 2))
    with pytest.raises(InputError, match="more than the GPU memory"):
        ImageData(particles, device="cpu")


def _anonymous_rss() -> int:
    info = psutil.Process().memory_info()
    return info.rss - info.shared  # file-backed pages (the page cache of mapped files) are not ours


def test_host_memory_stays_bounded(tmp_path):
    n, D = 8000, 64
    rng = np.random.default_rng(0)
    write_stack(tmp_path / "stack.mrcs", rng.standard_normal((n, D, D), dtype=np.float32), 2.0)
    stack = load_particles(tmp_path / "stack.mrcs")
    rot = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)).copy()
    particles = ParticleSet(stack.images, rotations=rot, shifts=rng.normal(0, 1, (n, 2)).astype(np.float32), apix=2.0)
    size = transform_bytes(n, D)  # 103 MB of transforms
    StreamedImageData(particles.subset(slice(0, 100)), cache_dir=tmp_path / "warm", progress=False, chunk=64)
    gc.collect()  # (the first transforms initialise FFT plans and imports: not what is measured)
    before = _anonymous_rss()
    data = StreamedImageData(particles, cache_dir=tmp_path / "cache", progress=False, chunk=64)
    built = _anonymous_rss() - before  # a chunk of images and their transforms' temporaries
    assert data.cache.path.stat().st_size > size
    before = _anonymous_rss()
    growth = []
    for epoch in range(2):
        order = np.random.default_rng(epoch).permutation(n)
        data.set_order(order, 256, n // 256)
        for position in range(n // 256):
            idx = torch.as_tensor(order[position * 256 : (position + 1) * 256])
            data.stage(idx, position)
            images, _, _ = data.batch(idx)
            assert images.shape == (256, len(data.half))
        growth.append(_anonymous_rss() - before)
    data.close()
    # in memory, the transforms alone would take `size`; here: a chunk, then a few batches in flight
    assert built < size / 4 and max(growth) < size / 3 and growth[1] - growth[0] < size / 10, (built, growth, size)


def test_chunked_shuffle_is_a_permutation_read_from_few_regions(particles):
    from cryonb.core.streaming import chunked_permutation

    g = torch.Generator().manual_seed(0)
    order = chunked_permutation(10_000, g, block=100, group=4).numpy()
    assert sorted(order) == list(range(10_000)) and not np.array_equal(order, np.arange(10_000))
    for start in range(0, 10_000, 400):  # each group of 4 blocks: 400 particles from 4 blocks of 100
        assert len(np.unique(order[start : start + 400] // 100)) == 4
    t = Trainer(particles, TrainConfig(**TINY, stream=True, shuffle="chunked")).fit(1, progress=False)
    assert t.history[0]["loss"] > 0
    with pytest.raises(InputError, match="shuffle must be"):
        TrainConfig(shuffle="random").validate()


def test_processes_sharing_a_cache_folder_build_it_once(particles, tmp_path, monkeypatch):
    import threading

    builds = []
    build = ImageCache.build.__func__

    def counting(cls, *args, **kwargs):
        builds.append(1)
        return build(cls, *args, **kwargs)

    monkeypatch.setattr(ImageCache, "build", classmethod(counting))
    caches = []
    threads = [threading.Thread(target=lambda: caches.append(ImageCache.open(tmp_path, particles, 16, progress=False)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(caches) == 3 and len({c.scale for c in caches}) == 1
