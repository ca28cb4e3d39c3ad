"""Shared fixtures: the real cryo-EM files in ../shared/data/real and a deterministic hypothesis profile
(CRYONB_FUZZ_EXAMPLES=N: N random examples per fuzz test instead)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REAL_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real"

# CRYONB_FUZZ_EXAMPLES=5000 runs every fuzz test long, with fresh random inputs (the default: 100, the same each run).
LONG_FUZZ = int(os.environ.get("CRYONB_FUZZ_EXAMPLES", "0"))
settings.register_profile(
    "cryonb",
    derandomize=not LONG_FUZZ,
    max_examples=LONG_FUZZ or 100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("cryonb")


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs two workers), the cores are shared out among the workers:
    torch's threads in every worker, and in the kernels and processes they start, would oversubscribe
    them (the quickstart's kernel next to a busy worker took 372 s with two threads, 115 s with one)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        threads = max(1, torch.get_num_threads() // workers)
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # kernels, CLI runs, spawned processes


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real third-party cryo-EM files (see its README.md); skips if absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"../shared/data/real not found: expected the real test files at {REAL_DATA.resolve()}")
    return REAL_DATA.resolve()


@pytest.fixture
def real_copy(real_data, tmp_path):
    """Copy real files (relative to ``real_data``) into ``tmp_path``; returns the copy of the first."""

    def copy(*names: str) -> Path:
        copies = [Path(shutil.copy(real_data / name, tmp_path / Path(name).name)) for name in names]
        return copies[0]

    return copy


@pytest.fixture
def one_torch_thread():
    """Many small tensor operations on a busy 2-core machine: one intra-op thread is several times faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
