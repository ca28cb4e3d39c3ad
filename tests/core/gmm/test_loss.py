import pytest
import torch

from cryonb.core.gmm.loss import frc, frc_loss, image_loss, ring_index
from cryonb.core.model import HalfPlane


@pytest.fixture
def half():
    return HalfPlane.build(16)


def test_rings_follow_the_radius(half):
    rings = ring_index(half.coords)
    assert int(rings.max()) == 8 and int(rings[0]) == 0
    assert int((ring_index(half.coords, 4) >= 0).sum()) == int((rings <= 4).sum())


def test_frc_is_one_for_scaled_copies_and_minus_one_for_negatives(half):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, len(half), dtype=torch.complex64, generator=g)
    rings = ring_index(half.coords)
    assert torch.allclose(frc(2.5 * x, x, rings)[:, 1:], torch.ones(3, 8), atol=1e-5)
    assert torch.allclose(frc_loss(-x, x, rings), torch.full((3,), 2.0), atol=1e-5)
    noisy = x + 3 * torch.randn(3, len(half), dtype=torch.complex64, generator=g)
    assert (frc_loss(noisy, x, rings) > 0.3).all()


def test_image_loss_kinds(half):
    x = torch.ones(2, len(half), dtype=torch.complex64)
    rings = ring_index(half.coords)
    assert torch.allclose(image_loss("mse", x * 2, x, rings), torch.ones(2))
    with pytest.raises(ValueError, match="loss must be"):
        image_loss("l1", x, x, rings)
