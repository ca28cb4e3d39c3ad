import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Many small tensor operations: one intra-op thread (tests/conftest.py) is several times faster here."""
    yield
