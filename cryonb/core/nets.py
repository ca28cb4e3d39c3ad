"""The multilayer perceptrons that encoders and decoders are made of."""

from __future__ import annotations

import torch
from torch import nn

from . import kernels


def mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units with ReLU, then a linear output layer.

    Each hidden layer is a :class:`DenseReLU` followed by an ``nn.Identity`` where its ReLU used to
    be, so that checkpoints keep their layer numbers.
    """
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [DenseReLU(n_in if i == 0 else width, width), nn.Identity()]
    layers.append(nn.Linear(width if depth else n_in, n_out))
    return nn.Sequential(*layers)


class DenseReLU(nn.Linear):
    """``relu(linear(x))`` as one product (:class:`FoldedReLU`); the parameters of ``nn.Linear``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return FoldedReLU.apply(x, self.weight, self.bias, False)


class Residual(nn.Module):
    """``relu(x + linear(x))``: a hidden layer that can pass its input through unchanged."""

    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return FoldedReLU.apply(x, self.linear.weight, self.linear.bias, True)


class FoldedReLU(torch.autograd.Function):
    """``relu(x Wᵀ + b)`` as one matrix product; with ``residual``, ``relu(x + x Wᵀ + b)`` as
    ``relu(x (W + I)ᵀ + b)``.

    The product's epilogue adds the bias and applies the ReLU, and folding the identity into the
    weight makes a residual input's gradient one product too (``g (W + I)``); autograd's version of
    these layers makes separate passes over the activations for the sum, the ReLU and the two
    gradients of ``x``. With the 1024-wide decoder at D = 128 dropping those passes made a step 1.2×
    faster (docs/benchmarks.md). Under autocast the product runs in its dtype, as ``nn.Linear``'s
    would; ``W + I`` is rounded to it as a whole, so in bfloat16 a diagonal weight is kept to about
    0.004. The input's gradient is computed only when the input needs one.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, residual: bool = False):
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        x2 = x.reshape(-1, x.shape[-1]).to(dtype)
        w = torch.eye(len(weight), device=weight.device, dtype=weight.dtype).add_(weight) if residual else weight
        w = w.to(dtype)
        with torch.autocast(device, enabled=False):
            y = torch._addmm_activation(bias.to(dtype), x2, w.t())  # bias and ReLU in the product's epilogue
        ctx.save_for_backward(x2, w, y)
        ctx.input_shape, ctx.param_dtype = x.shape, weight.dtype
        return y.view(*x.shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        x2, w, y = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(grad.reshape(y.shape).to(y.dtype), y, 0)
        grad_x = (g @ w).view(ctx.input_shape) if ctx.needs_input_grad[0] else None
        return grad_x, (g.t() @ x2).to(ctx.param_dtype), g.sum(0).to(ctx.param_dtype), None


class EncodedInputReLU(torch.autograd.Function):
    """The decoder's first layer, ``relu([sin φ, cos φ, z] [Wc Wz]ᵀ + b)``, as one product.

    ``phase`` (B, P, n) holds the encoding's phases in float32 (``sincos=False``: the features
    themselves); ``z`` (B, zdim) or None. The features are written once, in the product's dtype,
    with each image's ``z`` repeated along its pixels, so that the product's epilogue adds the bias
    and applies the ReLU; backwards, the gradients of ``z`` and of the bias come from one sum over
    the pixels. Built from ``nn.Linear``'s arithmetic, the layer made passes of their own over its
    (B·P, width) activations for the ``z`` term's sum, the ReLU and their gradients; fused, a step
    of the default GPU model at D = 128 is 1.08× faster (docs/benchmarks.md). ``wc`` (width, 2n),
    ``wz`` (width, zdim).
    """

    @staticmethod
    def forward(ctx, phase, z, wc, wz, bias, sincos: bool = True):
        device = phase.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else wc.dtype
        B, P = phase.shape[:2]
        features, w = _encoded_input(phase, z, wc, wz, sincos, dtype)
        with torch.autocast(device, enabled=False):
            y = torch._addmm_activation(bias.to(dtype), features.view(B * P, -1), w.t())
        ctx.save_for_backward(features, w, y, phase if ctx.needs_input_grad[0] else None)
        ctx.k, ctx.zdim, ctx.sincos, ctx.param_dtype = wc.shape[1], 0 if wz is None else wz.shape[1], sincos, wc.dtype
        return y.view(B, P, -1)

    @staticmethod
    def backward(ctx, grad):
        features, w, y, phase = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(grad.reshape(y.shape).to(y.dtype), y, 0)
        grad_w = (g.t() @ features.view(-1, features.shape[-1])).to(ctx.param_dtype)
        grad_phase, grad_z, per_image = _encoded_input_grads(ctx, g, features, w, phase)
        grad_wz = grad_w[:, ctx.k:ctx.k + ctx.zdim] if ctx.needs_input_grad[3] else None
        return grad_phase, grad_z, grad_w[:, :ctx.k], grad_wz, per_image.sum(0).to(ctx.param_dtype), None


class DecoderStack(torch.autograd.Function):
    """The decoder from its encoded input to its output in one Function, for a fused backward pass.

    The arithmetic of :class:`EncodedInputReLU`, then of :class:`FoldedReLU` (or
    :class:`DenseReLU`) hidden layers, then the linear output layer. Backwards, each layer's
    input-gradient product also applies the ReLU below it and sums that layer's bias gradient
    (:func:`cryonb.core.kernels.relu_grad_matmul`), which layer-by-layer Functions cannot do: a
    layer's backward pass would have to hand the layer below a bias gradient. ``params`` are each
    hidden layer's weight and bias, then the output layer's; ``residual`` says which hidden layers
    are residual; ``sincos`` as for ``_encoded_input``.
    """

    @staticmethod
    def forward(ctx, phase, z, wc, wz, bias, sincos: bool | torch.Tensor, residual: tuple[bool, ...], *params):
        device = phase.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else wc.dtype
        B, P = phase.shape[:2]
        features, w0 = _encoded_input(phase, z, wc, wz, sincos, dtype)
        weights = [w0]
        for w, folded in zip(params[:-2:2], residual):
            weights.append((torch.eye(len(w), device=w.device, dtype=w.dtype).add_(w) if folded else w).to(dtype))
        weights.append(params[-2].to(dtype))
        with torch.autocast(device, enabled=False):
            inputs = [features.view(B * P, -1)]
            for w, b in zip(weights[:-1], [bias, *params[1:-2:2]]):  # bias and ReLU in the product's epilogue
                inputs.append(torch._addmm_activation(b.to(dtype), inputs[-1], w.t()))
            out = torch.addmm(params[-1].to(dtype), inputs[-1], weights[-1].t())
        ctx.save_for_backward(phase if ctx.needs_input_grad[0] else None, *weights, *inputs)
        ctx.k, ctx.zdim, ctx.sincos, ctx.param_dtype = wc.shape[1], 0 if wz is None else wz.shape[1], sincos, wc.dtype
        ctx.image_shape = (B, P)
        return out.view(B, P, -1)

    @staticmethod
    def backward(ctx, grad):
        phase, *saved = ctx.saved_tensors
        L, dtype = len(saved) // 2, ctx.param_dtype  # L weights (the output layer's last), L inputs
        weights, inputs = saved[:L], saved[L:]
        g = grad.reshape(-1, grad.shape[-1]).to(weights[0].dtype)
        grads = [(g.t() @ inputs[-1]).to(dtype), kernels.column_sums(g).to(dtype)]  # the output layer's
        for i in range(L - 1, 0, -1):  # g becomes the gradient of the pre-activation of the layer below
            g, bias_grad = kernels.relu_grad_matmul(g, weights[i], inputs[i])
            grads[:0] = [(g.t() @ inputs[i - 1]).to(dtype)] + ([bias_grad.to(dtype)] if i > 1 else [])
        grad_w0, k = grads.pop(0), ctx.k
        grad_phase, grad_z, per_image = _encoded_input_grads(ctx, g, inputs[0].view(*ctx.image_shape, -1),
                                                             weights[0], phase)
        grad_wz = grad_w0[:, k:k + ctx.zdim] if ctx.needs_input_grad[3] else None
        return (grad_phase, grad_z, grad_w0[:, :k], grad_wz, per_image.sum(0).to(dtype), None, None, *grads)


def _encoded_input_grads(ctx, g, features, w, phase):
    """The gradients of the phases and of ``z`` from ``g``, the first layer's pre-activation gradient.

    Also returns ``g`` summed over each image's pixels (B, width), float32 (the bias's gradient is its sum).
    """
    B, P, k = features.shape[0], features.shape[1], ctx.k
    per_image = g.view(B, P, -1).sum(1, dtype=torch.float32)
    grad_z = per_image @ w[:, k:k + ctx.zdim].float() if ctx.needs_input_grad[1] else None
    grad_phase = None
    if ctx.needs_input_grad[0]:
        grad_features = (g @ w[:, :k]).float().view(B, P, k)
        if ctx.sincos:
            n = k // 2
            grad_phase = grad_features[..., :n] * torch.cos(phase) - grad_features[..., n:] * torch.sin(phase)
        else:
            grad_phase = grad_features
    return grad_phase, grad_z, per_image


ALIGN = 8  # on a GPU the features' columns are padded to a multiple of this: 16-byte rows for 16-bit products


def feature_columns(k: int, zdim: int, align: int = ALIGN) -> int:
    """The first layer's feature columns: ``k`` of the encoding, ``zdim`` of z, zeros up to a multiple of ``align``."""
    return k + zdim + -(k + zdim) % align


def _encoded_input(phase, z, wc, wz, sincos: bool | torch.Tensor, dtype,
                   align: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first layer's features ``[sin φ, cos φ, z, 0…]`` (B, P, m) and weight ``[Wc Wz 0…]`` in ``dtype``.

    ``sincos`` False: ``phase`` holds the features themselves; a (3, n) tensor of frequencies:
    ``phase`` holds the frequencies' coordinates (B, P, 3), turned into features by one kernel
    (:func:`cryonb.core.kernels.encoded_features`; the coordinates get no gradient).

    Each image's ``z`` is repeated along its pixels, and zero columns pad both to a multiple of
    ``align`` (default :data:`ALIGN` on a GPU, none on a CPU): cuBLAS's 16-bit products are fastest on
    rows of whole 16 bytes (with zdim 10 at D = 128, 394 columns made the 256×3 model's step 1.16×
    slower; docs/benchmarks.md). Eagerly the parts are written into one buffer (no intermediate
    copies); under ``torch.compile``, which cannot trace writes into column slices, as one
    concatenation that inductor fuses.
    """
    B, P = phase.shape[:2]
    k, zdim = wc.shape[1], 0 if z is None else z.shape[-1]
    pad = feature_columns(k, zdim, align or (ALIGN if phase.is_cuda else 1)) - k - zdim
    w = torch.cat([wc, *([] if wz is None else [wz]), wc.new_zeros(len(wc), pad)], dim=1).to(dtype)
    if isinstance(sincos, torch.Tensor):  # phase holds the coordinates, sincos the frequencies
        return kernels.encoded_features(phase, sincos, z, k + zdim + pad, dtype), w
    n = k // 2
    if torch.compiler.is_compiling():
        parts = [torch.sin(phase), torch.cos(phase)] if sincos else [phase]
        if z is not None:
            parts.append(z[:, None, :].expand(B, P, -1))
        parts.append(phase.new_zeros(B, P, pad))
        return torch.cat([part.to(dtype) for part in parts], dim=-1), w
    features = torch.empty(B, P, k + zdim + pad, device=phase.device, dtype=dtype)
    if sincos:
        torch.sin(phase, out=features[..., :n])
        torch.cos(phase, out=features[..., n:k])
    else:
        features[..., :k] = phase
    if z is not None:
        features[..., k:k + zdim] = z[:, None, :]
    features[..., k + zdim:] = 0
    return features, w


def residual_mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Sequential:
    """A linear layer into ``width`` units, ``depth`` residual layers, a linear output layer."""
    return nn.Sequential(DenseReLU(n_in, width), nn.Identity(), *(Residual(width) for _ in range(depth)),
                         nn.Linear(width, n_out))
