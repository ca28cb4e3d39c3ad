"""The folded residual layer against the layer autograd would build."""

import pytest
import torch

from cryonb.core.nets import Residual, ResidualReLU


def reference(layer, x):
    return torch.relu(x + layer.linear(x))


@pytest.mark.parametrize("shape", [(7, 16), (3, 5, 16)])
def test_gradients_are_exact(shape):
    torch.manual_seed(0)
    layer = Residual(16).double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ResidualReLU.apply, (x, layer.linear.weight, layer.linear.bias))
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
