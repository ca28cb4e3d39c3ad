"""cryonb's fused layers against the layers autograd would build."""

import pytest
import torch

from cryonb.core.errors import InputError
from cryonb.core.model import FourierDecoder
from cryonb.core.nets import DenseReLU, EncodedInputReLU, FoldedReLU, Residual, mlp


def reference(layer, x):
    return torch.relu(x + layer.linear(x))


@pytest.mark.parametrize("shape", [(7, 16), (3, 5, 16)])
def test_gradients_are_exact(shape):
    torch.manual_seed(0)
    layer = Residual(16).double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(FoldedReLU.apply, (x, layer.linear.weight, layer.linear.bias, True))
    torch.testing.assert_close(layer(x), reference(layer, x))


def test_matches_autograd_layer_in_float32():
    torch.manual_seed(1)
    layer, x = Residual(32), torch.randn(4, 9, 32)
    grads = []
    for forward in (layer, lambda x: reference(layer, x)):
        xi = x.clone().requires_grad_()
        layer.zero_grad()
        forward(xi).square().sum().backward()
        grads.append([xi.grad, layer.linear.weight.grad.clone(), layer.linear.bias.grad.clone()])
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_autocast_runs_in_its_dtype_and_keeps_parameter_gradients_float32():
    torch.manual_seed(2)
    layer, x = Residual(32), torch.randn(64, 32, requires_grad=True)
    with torch.autocast("cpu", torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert layer.linear.weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
    expected = reference(layer, x.detach()).detach()
    assert torch.allclose(y.float(), expected, rtol=0.02, atol=0.05)  # bfloat16 rounding only


def test_dead_units_pass_no_gradient():
    layer = Residual(4)
    with torch.no_grad():
        layer.linear.weight.zero_()
        layer.linear.bias.fill_(-10.0)
    x = torch.ones(3, 4, requires_grad=True)
    out = layer(x)
    assert torch.equal(out, torch.zeros(3, 4))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros(3, 4))


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 5)])
def test_dense_layer_is_linear_then_relu_with_exact_gradients(shape):
    torch.manual_seed(6)
    layer = DenseReLU(5, 8).double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(FoldedReLU.apply, (x, layer.weight, layer.bias, False))
    torch.testing.assert_close(layer(x), torch.relu(torch.nn.functional.linear(x, layer.weight, layer.bias)))


def test_no_input_gradient_is_computed_for_an_input_that_needs_none():
    layer, x = DenseReLU(4, 6), torch.randn(5, 4)  # e.g. an encoder's images
    layer(x).sum().backward()
    assert x.grad is None and layer.weight.grad is not None and layer.bias.grad is not None


def test_mlp_keeps_the_layer_numbers_of_checkpoints():
    """Checkpoints written when the hidden layers were nn.Linear + nn.ReLU still load."""
    old = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    new = mlp(3, 8, 2, 2)
    new.load_state_dict(old.state_dict())
    x = torch.randn(10, 3)
    torch.testing.assert_close(new(x), old(x))


def encoded_reference(phase, z, wc, wz, bias, sincos=True):
    features = torch.cat([torch.sin(phase), torch.cos(phase)], -1) if sincos else phase
    h = features @ wc.t() + bias
    return torch.relu(h if z is None else h + (z @ wz.t())[:, None, :])


@pytest.mark.parametrize("zdim, sincos", [(3, True), (0, True), (2, False)])
def test_encoded_input_layer_gradients_are_exact(zdim, sincos):
    torch.manual_seed(3)
    n, width = 4, 6
    phase = torch.randn(2, 5, n, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, zdim, dtype=torch.float64, requires_grad=True) if zdim else None
    wc = torch.randn(width, 2 * n if sincos else n, dtype=torch.float64, requires_grad=True)
    wz = torch.randn(width, zdim, dtype=torch.float64, requires_grad=True) if zdim else None
    bias = torch.randn(width, dtype=torch.float64, requires_grad=True)
    args = (phase, z, wc, wz, bias, sincos)
    assert torch.autograd.gradcheck(EncodedInputReLU.apply, args)
    torch.testing.assert_close(EncodedInputReLU.apply(*args), encoded_reference(*args))


def test_decoder_computes_what_its_layers_describe():
    """FourierDecoder's fused first layer is relu(coords_in(encoding) + latent_in(z)), then net."""
    torch.manual_seed(4)
    decoder = FourierDecoder(16, 3, width=32, depth=2, encoding="gaussian", residual=True)
    coords, z = torch.randn(2, 7, 3).abs() * 4, torch.randn(2, 3)  # kz > 0: no Hermitian flip
    features = decoder.encoding(coords / 16)
    h = torch.relu(decoder.coords_in(features) + decoder.latent_in(z)[:, None, :])
    out = decoder.net(h)
    torch.testing.assert_close(decoder(coords, z), torch.complex(out[..., 0], out[..., 1]))


def test_encoded_input_layer_under_autocast_keeps_float32_gradients():
    torch.manual_seed(5)
    phase, z = torch.randn(3, 8, 4, requires_grad=True), torch.randn(3, 2, requires_grad=True)
    wc, wz = torch.randn(16, 8, requires_grad=True), torch.randn(16, 2, requires_grad=True)
    bias = torch.randn(16, requires_grad=True)
    with torch.autocast("cpu", torch.bfloat16):
        y = EncodedInputReLU.apply(phase, z, wc, wz, bias)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert all(t.grad.dtype == torch.float32 for t in (phase, z, wc, wz, bias))
    expected = encoded_reference(phase.detach(), z.detach(), wc.detach(), wz.detach(), bias.detach())
    assert torch.allclose(y.float(), expected, rtol=0.02, atol=0.1)  # bfloat16 rounding only


def test_decoder_compiles_to_one_graph_with_the_same_values_and_gradients():
    """torch.compile (TrainConfig(compile=True)) traces the fused layers whole: no graph breaks,
    which would leave the first layer eager and split the step; the traced form computes the same."""
    import torch._dynamo

    torch.manual_seed(6)
    decoder = FourierDecoder(16, 3, width=32, depth=2, encoding="gaussian", residual=True)
    coords, z = torch.randn(2, 9, 3) * 4, torch.randn(2, 3, requires_grad=True)

    def loss(coords, z):
        with torch.autocast("cpu", torch.bfloat16):
            return decoder(coords, z).abs().sum()

    torch._dynamo.reset()
    explained = torch._dynamo.explain(loss)(coords, z)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), [b.reason for b in explained.break_reasons]
    grads = []
    for fn in (loss, torch.compile(loss, backend="aot_eager", fullgraph=True)):
        decoder.zero_grad(set_to_none=True)
        z.grad = None
        value = fn(coords, z)
        value.backward()
        grads.append([value.detach(), z.grad.clone(), decoder.coords_in.weight.grad.clone()])
    torch._dynamo.reset()
    for eager, traced in zip(*grads):
        torch.testing.assert_close(traced, eager)


@pytest.mark.parametrize("zdim", [0, 3, 8, 10])
def test_first_layer_features_are_padded_to_whole_16_byte_rows(zdim):
    from cryonb.core.nets import ALIGN, _encoded_input

    torch.manual_seed(4)
    phase, wc = torch.randn(2, 5, 6), torch.randn(7, 12)
    z, wz = (torch.randn(2, zdim), torch.randn(7, zdim)) if zdim else (None, None)
    assert _encoded_input(phase, z, wc, wz, True, torch.float32)[1].shape[1] == 12 + zdim  # a CPU: no padding
    features, w = _encoded_input(phase, z, wc, wz, True, torch.float32, align=ALIGN)  # a GPU's
    assert features.shape[-1] == w.shape[1] and w.shape[1] % ALIGN == 0 and w.shape[1] - (12 + zdim) < ALIGN
    assert torch.equal(features[..., 12 + zdim:], torch.zeros_like(features[..., 12 + zdim:]))
    assert torch.equal(w[:, 12 + zdim:], torch.zeros_like(w[:, 12 + zdim:]))
    unpadded = torch.cat([torch.sin(phase), torch.cos(phase)] + ([z[:, None].expand(2, 5, zdim)] if zdim else []), -1)
    torch.testing.assert_close(features @ w.t(), unpadded @ torch.cat([wc] + ([wz] if zdim else []), 1).t())


def test_joint_init_draws_the_first_layer_as_one_layer_over_encoding_and_z():
    """``decoder_init='joint'``: the first layer's two parts drawn with one bound, 1/√(features + zdim),
    as a single nn.Linear over [encoding(k), z] would be (the GPU's default); 'split' (the CPU's) draws
    z's part with its own fan-in, 1/√zdim, several times larger."""
    from cryonb.core.train_config import TrainConfig

    split = TrainConfig(zdim=8, dec_width=256, encoding="gaussian", decoder_init="split").build_decoder(128)
    joint = TrainConfig(zdim=8, dec_width=256, encoding="gaussian", decoder_init="joint").build_decoder(128)
    bound = (joint.encoding.out_dim + 8) ** -0.5
    for weight in (joint.latent_in.weight, joint.coords_in.weight, joint.coords_in.bias):
        assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound
    assert split.latent_in.weight.abs().max() > 0.9 * 8**-0.5 > 5 * bound
    homogeneous = TrainConfig(zdim=0, dec_width=64, encoding="gaussian", decoder_init="joint").build_decoder(16)
    assert homogeneous.coords_in.weight.abs().max() <= homogeneous.encoding.out_dim ** -0.5
    with pytest.raises(InputError, match="decoder_init"):
        TrainConfig(decoder_init="wide").validate()
