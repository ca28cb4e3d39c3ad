import pytest
import torch

from cryonb.core.gmm import GaussianDecoder, GaussianMixture, mixture_transform, render
from cryonb.core.model import HalfPlane


def neutral(D=16, n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GaussianMixture(torch.randn(n, 3, generator=g) * 2, torch.rand(n, generator=g) + 0.5, torch.full((n,), 1.5), D)


def perturbed(decoder, seed=1):
    """Output weights large enough that the offsets are far from zero."""
    torch.manual_seed(seed)
    with torch.no_grad():
        decoder.net[-1].weight.normal_(0, 0.3)
        decoder.net[-1].bias.normal_(0, 0.3)
    return decoder


def test_starts_at_the_neutral_model():
    dec = GaussianDecoder(neutral(), zdim=2, width=16, depth=1)
    p, a, w = dec.gaussians(torch.randn(3, 2))
    assert torch.allclose(p, dec.positions.expand(3, -1, -1), atol=0.1)
    assert torch.allclose(a, dec.amplitudes.expand(3, -1), rtol=0.1)


def test_forward_and_volumes_agree_with_the_gaussians():
    dec = perturbed(GaussianDecoder(neutral(), zdim=2, width=16, depth=1))
    z = torch.randn(3, 2)
    coords = HalfPlane.build(16).coords.expand(3, -1, -1)
    p, a, w = dec.gaussians(z)
    assert torch.allclose(dec(coords, z), mixture_transform(coords, p, a, w, 16))
    maps = dec.volumes(z)
    assert maps.shape == (3, 16, 16, 16)
    assert torch.allclose(maps, render(p, a, w, 16), atol=1e-5)
    assert not torch.allclose(maps[0], maps[1], atol=1e-3)  # the latent changes the map


@pytest.mark.parametrize("mode", ["amplitude", "position", "both"])
def test_modes_and_mask_choose_what_varies(mode):
    movable = torch.zeros(10, dtype=torch.bool)
    movable[[2, 5]] = True
    dec = perturbed(GaussianDecoder(neutral(), zdim=2, width=16, depth=1, mode=mode, movable=movable))
    p, a, w = dec.gaussians(torch.randn(4, 2))
    fixed = ~movable
    assert torch.equal(p[:, fixed], dec.positions[fixed].expand(4, -1, -1))
    assert torch.equal(a[:, fixed], dec.amplitudes[fixed].expand(4, -1))
    moved_p = not torch.equal(p[:, movable], dec.positions[movable].expand(4, -1, -1))
    moved_a = not torch.equal(a[:, movable], dec.amplitudes[movable].expand(4, -1))
    assert moved_p == (mode in ("position", "both"))
    assert moved_a == (mode in ("amplitude", "both"))


def test_homogeneous_decoder_is_the_neutral_mixture():
    m = neutral()
    dec = GaussianDecoder(m, zdim=0)
    assert dec.net is None
    assert torch.allclose(dec.volumes()[0], m.render())


def test_state_dict_loads_into_a_decoder_of_another_size():
    dec = perturbed(GaussianDecoder(neutral(n=10), zdim=2, width=16, depth=1, movable=torch.arange(10) < 4))
    other = GaussianDecoder(neutral(n=3, seed=5), zdim=2, width=16, depth=1)
    other.load_state_dict(dec.state_dict())
    z = torch.randn(2, 2)
    assert len(other) == 10 and int(other.movable.sum()) == 4
    assert torch.allclose(other.volumes(z), dec.volumes(z))


def test_calibrate_finds_the_images_scale():
    dec = GaussianDecoder(neutral(), zdim=0)
    coords = HalfPlane.build(16).coords.expand(2, -1, -1)
    images = 3.5 * dec(coords, None).expand(2, -1)
    dec.calibrate(images, coords, torch.ones(()))
    assert float(dec.scale.detach()) == pytest.approx(3.5, rel=1e-4)


def test_penalty_is_zero_at_the_neutral_model_and_grows_with_offsets():
    dec = GaussianDecoder(neutral(), zdim=2, width=16, depth=1)
    with torch.no_grad():
        dec.net[-1].weight.zero_()
    z = torch.randn(8, 2)
    assert float(dec.penalty(z)) == 0.0
    assert float(perturbed(dec).penalty(z)) > 0.0


def test_hermitian_half_space_values():
    dec = perturbed(GaussianDecoder(neutral(), zdim=2, width=16, depth=1))
    k = torch.randn(2, 30, 3) * 4
    z = torch.randn(2, 2)
    assert torch.allclose(dec(-k, z), dec(k, z).conj(), atol=1e-3)
