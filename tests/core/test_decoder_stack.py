"""The decoder as one Function (nets.DecoderStack) against its layers, and its fused backward kernel."""

import warnings

import pytest
import torch

from cryonb.core import kernels
from cryonb.core.model import FourierDecoder
from cryonb.core.nets import DecoderStack, EncodedInputReLU, _encoded_input

gpu = pytest.mark.skipif(not kernels.available(), reason="needs a CUDA device and Triton")
hopper = pytest.mark.skipif(not kernels.available() or torch.cuda.get_device_capability() < (9, 0),
                            reason="needs Hopper's tensor memory accelerator")


def decoder(residual: bool, zdim: int, width: int = 16, device="cpu", dtype=torch.float64):
    torch.manual_seed(0)
    return FourierDecoder(12, zdim, width=width, depth=3, residual=residual).to(device, dtype)


def inputs(dec, B=3, P=10, device="cpu", dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    phase = torch.randn(B, P, dec.encoding.phase(torch.zeros(1, 3, dtype=dtype, device=device)).shape[-1], generator=g,
                        dtype=dtype).to(device)
    z = torch.randn(B, dec.zdim, generator=g, dtype=dtype).to(device) if dec.zdim else None
    return phase, z


def first_layer(dec, phase, z):
    return (phase, z, dec.coords_in.weight, None if dec.latent_in is None else dec.latent_in.weight,
            dec.coords_in.bias, True)


def outputs_and_gradients(dec, phase, z, stacked: bool):
    phase = phase.clone().requires_grad_()
    z = None if z is None else z.clone().requires_grad_()
    dec.zero_grad()
    if stacked:
        residual, params = dec._hidden_layers()
        out = DecoderStack.apply(*first_layer(dec, phase, z), residual, *params)
    else:
        out = dec.net(EncodedInputReLU.apply(*first_layer(dec, phase, z)))
    weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).view(out.shape)
    (out.float() * weight).sum().backward()
    grads = [phase.grad] + ([] if z is None else [z.grad]) + [p.grad for p in dec.parameters()]
    return out.detach(), grads


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("zdim", [0, 3])
def test_stack_computes_what_its_layers_compute(residual, zdim):
    dec = decoder(residual, zdim)
    phase, z = inputs(dec)
    out, grads = outputs_and_gradients(dec, phase, z, stacked=True)
    expected, expected_grads = outputs_and_gradients(dec, phase, z, stacked=False)
    torch.testing.assert_close(out, expected)
    assert len(grads) == len(expected_grads)
    for ours, theirs in zip(grads, expected_grads):
        torch.testing.assert_close(ours, theirs)


def test_stack_gradients_are_exact():
    dec = decoder(True, 2, width=6)
    phase, z = inputs(dec, B=2, P=3)
    residual, params = dec._hidden_layers()
    args = (*first_layer(dec, phase.requires_grad_(), z.requires_grad_()), residual, *params)
    assert torch.autograd.gradcheck(DecoderStack.apply, args)


def test_decoder_uses_the_stack_only_where_the_kernel_runs():
    dec = decoder(True, 3, dtype=torch.float32)
    assert not dec._fuse_backward(torch.zeros(2, 5, 3))  # a CPU: the layers, as before


def test_a_kernel_that_cannot_run_here_falls_back_to_torch_once_with_a_warning(monkeypatch):
    def broken(*args):
        raise RuntimeError("PTX too new for this driver")

    monkeypatch.setattr(kernels, "_usable", lambda *args: True)
    monkeypatch.setattr(kernels, "_launch", broken)
    monkeypatch.setattr(kernels, "failed", set())
    torch.manual_seed(5)
    grad, weight, activations = torch.randn(9, 4), torch.randn(4, 6), torch.relu(torch.randn(9, 6))
    expected = torch.ops.aten.threshold_backward(grad @ weight, activations, 0)
    with pytest.warns(RuntimeWarning, match="PTX too new"):
        out, sums = kernels.relu_grad_matmul(grad, weight, activations, config=kernels.PLAIN)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(sums, expected.sum(0))
    assert kernels.failed == {kernels.PLAIN}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: the failed configuration is not tried again
        kernels.relu_grad_matmul(grad, weight, activations, config=kernels.PLAIN)


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("M, N, K", [(1000, 256, 256), (777, 1024, 1024), (3001, 2, 256), (50, 96, 200)])
@pytest.mark.parametrize("config", [kernels.PLAIN, pytest.param(kernels.TMA, marks=hopper), None])
def test_kernel_matches_torch(M, N, K, dtype, config):
    torch.manual_seed(3)
    grad = torch.randn(M, N, device="cuda", dtype=dtype)
    weight = (torch.randn(N, K, device="cuda") / N**0.5).to(dtype)
    activations = torch.relu(torch.randn(M, K, device="cuda")).to(dtype)
    if config == kernels.TMA and N % 8:
        pytest.skip("rows of N = 2 are too short for the tensor memory accelerator")
    out, bias_grad = kernels.relu_grad_matmul(grad, weight, activations, config)
    expected = torch.ops.aten.threshold_backward(grad @ weight, activations, 0)
    assert out.dtype == dtype and bias_grad.dtype == torch.float32
    assert torch.equal(out == 0, expected == 0) or ((out == 0) != (expected == 0)).float().mean() < 1e-4
    torch.testing.assert_close(out, expected, rtol=0.02, atol=0.02)
    torch.testing.assert_close(bias_grad, expected.float().sum(0), rtol=0.01, atol=0.05)


@gpu
@pytest.mark.parametrize("config", [kernels.THIN, kernels.PLAIN, pytest.param(kernels.TMA, marks=hopper)])
def test_kernel_reaches_rows_past_two_to_the_31_elements(config):
    """Rows × columns over 2³¹ (latents refined 512 images at a time at D = 128): offsets in 64 bits."""
    M, N, K = 2**21 + 300, 64, 1024
    torch.manual_seed(4)
    grad = torch.randn(M, N, device="cuda", dtype=torch.bfloat16)
    weight = (torch.randn(N, K, device="cuda") / N**0.5).to(torch.bfloat16)
    activations = torch.relu(torch.randn(M, K, device="cuda", dtype=torch.bfloat16))
    out, bias_grad = kernels.relu_grad_matmul(grad, weight, activations, config)
    tail = slice(M - 4096, M)  # the rows whose offsets pass 2³¹
    expected = torch.ops.aten.threshold_backward(grad[tail] @ weight, activations[tail], 0)
    torch.testing.assert_close(out[tail], expected, rtol=0.02, atol=0.02)
    del out
    sums = torch.ops.aten.threshold_backward(grad @ weight, activations, 0).float().sum(0)
    torch.testing.assert_close(bias_grad, sums, rtol=0.01, atol=1.0)


@gpu
@pytest.mark.parametrize("residual", [True, False])
def test_stack_on_the_gpu_is_as_close_to_float32_as_its_layers(residual):
    """In bfloat16 the two differ by rounding (and the ReLU units it tips over), each about as far
    from the float32 layers."""
    dec = decoder(residual, 8, width=256, device="cuda", dtype=torch.float32)
    phase, z = inputs(dec, B=4, P=700, device="cuda", dtype=torch.float32)
    assert dec._fuse_backward(torch.zeros(1, 3, device="cuda")) is False  # only under autocast
    reference, reference_grads = outputs_and_gradients(dec, phase, z, stacked=False)
    errors = {}
    for stacked in (True, False):
        with torch.autocast("cuda", torch.bfloat16):
            out, grads = outputs_and_gradients(dec, phase, z, stacked)
        errors[stacked] = [(a.float() - b).norm() / b.norm() for a, b in zip([out] + grads, [reference] + reference_grads)]
    for ours, layers in zip(errors[True], errors[False]):
        assert ours < 0.2 and ours < 1.5 * layers + 1e-3, (ours, layers)


def frequencies(B=3, P=40, D=12, device="cpu", seed=2):
    """Rotated lattice frequencies (pixels), about half with a negative third component."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, P, 3, generator=g) * D - D / 2).to(device)


def phase_features(dec, coords, z, dtype, align=None):
    """The first layer's features the way the decoder made them before the kernel: float32 phases first."""
    flip = coords[..., 2:3] < 0
    phase = dec.encoding.phase(torch.where(flip, -coords, coords).float() / dec.D)
    return _encoded_input(phase, z, dec.coords_in.weight, dec.latent_in.weight, True, dtype, align)[0]


@pytest.mark.parametrize("align", [1, 8])
def test_features_from_coordinates_are_the_phases_sines_and_cosines(align):
    dec = decoder(True, 3, dtype=torch.float32)
    coords, z = frequencies(), torch.randn(3, 3)
    expected = phase_features(dec, coords, z, torch.float32, align)
    features, _ = _encoded_input(coords, z, dec.coords_in.weight, dec.latent_in.weight, dec.encoding.B / dec.D,
                                 torch.float32, align)
    assert features.shape == expected.shape and features.dtype == torch.float32
    torch.testing.assert_close(features, expected, rtol=0, atol=1e-5)


def test_a_features_kernel_that_cannot_run_here_falls_back_to_torch(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no kernel image is available")

    monkeypatch.setattr(kernels, "_usable", lambda *args: True)
    monkeypatch.setattr(kernels, "_launch_features", broken)
    monkeypatch.setattr(kernels, "failed", set())
    dec = decoder(True, 3, dtype=torch.float32)
    coords, z = frequencies(), torch.randn(3, 3)
    with pytest.warns(RuntimeWarning, match="no kernel image"):
        features = kernels.encoded_features(coords, dec.encoding.B / dec.D, z, 40, torch.float32)
    assert kernels.failed == {"features"}
    torch.testing.assert_close(features, phase_features(dec, coords, z, torch.float32, align=8), rtol=0, atol=1e-5)


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("B, P, zdim", [(4, 6425, 10), (3, 777, 0), (1, 50, 8)])
def test_features_kernel_matches_torch(B, P, zdim, dtype):
    torch.manual_seed(4)
    dec = FourierDecoder(128, zdim, width=32, encoding="gaussian").cuda()
    coords = frequencies(B, P, D=128, device="cuda")
    z = torch.randn(B, zdim, device="cuda") if zdim else None
    freqs = dec.encoding.B / dec.D
    columns = -(-(freqs.shape[1] * 2 + zdim) // 8) * 8
    out = kernels.encoded_features(coords, freqs, z, columns, dtype)
    expected = kernels._features(coords, freqs, z, columns, dtype)
    assert out.shape == (B, P, columns) and out.dtype == dtype
    torch.testing.assert_close(out.float(), expected.float(), rtol=0, atol=8e-3)  # a unit in the last place of 1
    assert torch.equal(out[..., 2 * freqs.shape[1]:], expected[..., 2 * freqs.shape[1]:])  # z and zeros, exactly


@gpu
def test_decoder_from_coordinates_trains_as_from_phases():
    """The kernel's path (coordinates without a gradient) against the phases' path (with one), in bfloat16."""
    torch.manual_seed(6)
    dec = FourierDecoder(128, 8, width=256, depth=3, encoding="gaussian", residual=True).cuda()
    coords, z = frequencies(4, 1000, D=128, device="cuda"), torch.randn(4, 8, device="cuda")
    results = []
    for through_phases in (False, True):
        dec.zero_grad()
        c = coords.clone().requires_grad_(through_phases)
        zz = z.clone().requires_grad_()
        with torch.autocast("cuda", torch.bfloat16):
            out = dec(c, zz)
        (out.real.sum() + 0.5 * out.imag.sum()).backward()
        results.append([out.detach(), zz.grad] + [p.grad for p in dec.parameters() if p.grad is not None])
    for ours, theirs in zip(*results):
        assert (ours - theirs).abs().max() <= 0.02 * theirs.abs().max() + 1e-6


def test_compile_ahead_makes_each_launch_in_a_thread_of_its_own_and_waits():
    import threading
    import time

    seen = []

    def launch(i):
        time.sleep(0.05)
        seen.append((i, threading.current_thread().name))

    wait = kernels.compile_ahead([lambda i=i: launch(i) for i in range(3)], torch.device("cpu"))
    wait()
    assert sorted(i for i, _ in seen) == [0, 1, 2]
    assert all(name != threading.main_thread().name for _, name in seen)


def test_compile_kernels_is_nothing_to_do_on_a_cpu():
    dec = FourierDecoder(16, 2, width=16, encoding="gaussian", residual=True)
    wait = dec.compile_kernels(4, 100)
    assert wait() is None and not kernels.failed


def _compiled_variants() -> int:
    """How many specialisations of cryonb's Triton kernels this process holds (Triton's own caches)."""
    functions = [kernels._relu_grad_matmul, kernels._relu_grad_matmul_tma, kernels._encoded_features]
    if not all(hasattr(f, "device_caches") for f in functions):
        pytest.skip("this Triton keeps its compiled kernels elsewhere")
    return sum(len(cache[0]) for f in functions for cache in f.device_caches.values())


@gpu
def test_a_step_after_compile_kernels_compiles_nothing_more():
    """The kernels compiled ahead are the ones a training step at those shapes launches."""
    torch.manual_seed(7)
    B, P = 4, 6425
    dec = FourierDecoder(128, 8, width=256, depth=3, encoding="gaussian", residual=True).cuda()
    torch.empty(256 << 20, dtype=torch.uint8, device="cuda")  # freed at once: cached memory serves the threads
    dec.compile_kernels(B, P)()  # binds them a CUDA context, so compile_ahead must
    before = _compiled_variants()
    assert before >= 3 and not kernels.failed
    coords, z = frequencies(B, P, D=128, device="cuda"), torch.randn(B, 8, device="cuda", requires_grad=True)
    with torch.autocast("cuda", torch.bfloat16):
        out = dec(coords, z)
    out.real.sum().backward()
    assert _compiled_variants() == before
