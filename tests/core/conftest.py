import pytest
import torch

from cryonb.core.phantoms import hinge, lacking_a_subunit
from cryonb.core.simulate import simulate


@pytest.fixture(scope="session")
def rare_state():
    """1,000 particles of box 32, a fifth of them lacking a tenth of the mass, at SNR 0.1 with CTF and shifts."""
    full = hinge(32)
    return simulate(torch.stack([full, lacking_a_subunit(full)]), 1000, D=32, snr=0.1, proportions=[0.8, 0.2],
                    shift_sigma=1.0, seed=3, progress=False)
