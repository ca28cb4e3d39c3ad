import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Many small tensor operations on a busy 2-core machine: one intra-op thread is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
