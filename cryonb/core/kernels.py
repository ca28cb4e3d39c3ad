"""The decoder's Triton kernels, each with torch's equivalent for a CPU or a GPU without Triton.

:func:`relu_grad_matmul`: a ReLU layer's backward product with the previous layer's ReLU and bias
gradients in it. Between two ReLU layers, autograd's backward pass multiplies the upper layer's
gradient by its weight (``g W``), then reads the result and the lower layer's activations again to
zero the gradient where the lower ReLU was off (``threshold_backward``), then once more to sum the
lower layer's bias gradient; the kernel masks the product's tiles by the activations and sums them
by column before they are written.

:func:`encoded_features`: the decoder's first-layer features ``[sin φ, cos φ, z, 0…]`` written
straight from the frequencies' coordinates, without the float32 phases that torch's matrix product
and two elementwise passes write and read again.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Sequence

import torch

try:
    import triton
    import triton.language as tl
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:  # the CPU wheels of torch come without Triton
    triton = None

# Tiles (BLOCK_M rows, BLOCK_K output columns, BLOCK_N of the reduction, warps, stages[, "tma"]), chosen on
# one H200 at D = 128 (benchmarks/bench_relu_grad.py, docs/benchmarks.md). With the tensor memory
# accelerator (Hopper on) moving the tiles, the kernel beats torch's three passes at 256 and 1024 wide;
# without it, only up to 512 wide, so wider layers keep torch's there (None). The output layer's two
# columns (N = 2) make rows too short for it.
TMA, PLAIN, THIN = (128, 128, 32, 4, 4, "tma"), (128, 128, 32, 4, 4), (128, 128, 16, 4, 2)


def relu_grad_matmul(grad: torch.Tensor, weight: torch.Tensor, activations: torch.Tensor,
                     config: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grad @ weight) ⊙ (activations > 0)`` (M, K) and its column sums (K,), float32.

    ``grad`` (M, N) is a layer's pre-activation gradient, ``weight`` (N, K) its weight and
    ``activations`` (M, K) its input, the output of the ReLU below: the result is that layer's
    pre-activation gradient, its column sums that layer's bias gradient.
    """
    if not _usable(grad):
        return _three_passes(grad, weight, activations)
    config = config or _config(grad.shape[1], weight.shape[1], grad.device)
    if config is None:
        return _three_passes(grad, weight, activations)
    return _guarded(config, lambda: _launch(grad.contiguous(), weight.contiguous(), activations.contiguous(), config),
                    lambda: _three_passes(grad, weight, activations))


def encoded_features(coords: torch.Tensor, freqs: torch.Tensor, z: torch.Tensor | None, columns: int,
                     dtype: torch.dtype) -> torch.Tensor:
    """The first layer's features ``[sin φ, cos φ, z, 0…]`` (B, P, ``columns``) in ``dtype``.

    ``coords`` (B, P, 3) are frequencies, reflected through the origin where their third component
    is negative (the decoder's half-space); ``φ = coords @ freqs`` (``freqs`` (3, n), float32);
    ``z`` (B, zdim) is repeated along each image's pixels; zeros fill the remaining columns.
    """
    if not _usable(coords, dtype):
        return _features(coords, freqs, z, columns, dtype)
    return _guarded("features", lambda: _launch_features(coords, freqs, z, columns, dtype),
                    lambda: _features(coords, freqs, z, columns, dtype))


FEATURE_ROWS, FEATURE_PHASES = 16, 64  # encoded_features' tiles (rows, phases), chosen on one H200 (bench_features.py)


def _launch_features(coords, freqs, z, columns, dtype):
    B, P, _ = coords.shape
    coords, freqs = coords.float().contiguous(), freqs.float().contiguous()
    z = coords.new_zeros(B, 0) if z is None else z.float().contiguous()
    out = torch.empty(B, P, columns, device=coords.device, dtype=dtype)
    n = freqs.shape[1]
    grid = (triton.cdiv(B * P, FEATURE_ROWS), triton.cdiv(n, FEATURE_PHASES) + 1)  # and a tile for z and zeros
    _encoded_features[grid](coords, freqs, z, out, B * P, P, n, z.shape[1], columns, BLOCK_R=FEATURE_ROWS,
                            BLOCK_J=FEATURE_PHASES, BLOCK_T=triton.next_power_of_2(max(columns - 2 * n, 1)))
    return out


def _features(coords, freqs, z, columns, dtype):
    B, P, _ = coords.shape
    phase = torch.where(coords[..., 2:3] < 0, -coords, coords).float() @ freqs.float()
    parts = [torch.sin(phase), torch.cos(phase)] + ([] if z is None else [z[:, None, :].expand(B, P, -1)])
    out = torch.cat([part.to(dtype) for part in parts], dim=-1)
    return torch.cat([out, out.new_zeros(B, P, columns - out.shape[-1])], dim=-1)


def compile_ahead(launches: Sequence[Callable[[], object]], device: torch.device) -> Callable[[], None]:
    """Make each of ``launches`` (a kernel's first launch on ``device``, at a step's shapes) in a thread of
    its own; returns a function that waits for them all.

    A kernel's first launch compiles it (unless Triton's cache holds it), and Triton's compiler works
    partly outside the GIL: on an H200 with an empty cache the three kernels of a D = 128 step took
    2.4-2.5 s in three threads against 4.5-5.1 s one after another (docs/benchmarks.md, "The optimiser
    in one kernel, the kernels compiled side by side"). A kernel that cannot run here falls back to
    torch's form as in any launch.
    """
    threads = [threading.Thread(target=_in_thread, args=(launch, device), daemon=True, name="cryonb-kernel-compile")
               for launch in launches]
    for thread in threads:
        thread.start()

    def wait():
        for thread in threads:
            thread.join()

    return wait


def _in_thread(launch: Callable[[], object], device: torch.device):
    """``launch()`` in a new thread, which holds no CUDA context until a runtime call binds the device's:
    without one, the tensor memory accelerator's descriptors cannot be made (Triton's driver calls)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.cuda.synchronize(device)  # a runtime call: the device's primary context becomes this thread's
    launch()


def _guarded(key, launch, fallback):
    """``launch()``; where Triton cannot build or run kernel ``key`` here, ``fallback()`` from then on
    (with one warning)."""
    if key not in failed:
        try:
            return launch()
        except Exception as error:  # noqa: BLE001 - an old Triton, a driver that refuses the code: torch's way
            failed.add(key)
            warnings.warn(f"cryonb's Triton kernel {key} does not run here ({type(error).__name__}: {error}); "
                          "using torch's operations instead", RuntimeWarning, stacklevel=3)
    return fallback()


failed: set = set()  # the kernels (keys: tile configurations, "features") that could not be built or launched here


def _usable(x: torch.Tensor, dtype: torch.dtype | None = None) -> bool:
    return triton is not None and x.is_cuda and (dtype or x.dtype) in (torch.bfloat16, torch.float16)


def _three_passes(grad, weight, activations):
    out = torch.ops.aten.threshold_backward(grad @ weight, activations, 0)
    return out, column_sums(out)


def _launch(grad, weight, activations, config):
    (M, N), K = grad.shape, weight.shape[1]
    block_m, block_k, block_n, warps, stages, *tma = config
    rows = triton.cdiv(M, block_m)
    out = torch.empty(M, K, device=grad.device, dtype=grad.dtype)
    partial = torch.empty(rows, K, device=grad.device, dtype=torch.float32)
    grid, options = (rows * triton.cdiv(K, block_k),), dict(BLOCK_M=block_m, BLOCK_K=block_k, BLOCK_N=block_n,
                                                           GROUP_M=8, num_warps=warps, num_stages=stages)
    if tma:  # the tiles moved by the tensor memory accelerator (Hopper on)
        tiles = [(grad, block_m, block_n), (weight, block_n, block_k), (activations, block_m, block_k), (out, block_m, block_k)]
        _relu_grad_matmul_tma[grid](*(TensorDescriptor.from_tensor(t, [r, c]) for t, r, c in tiles), partial, M, N, K,
                                    **options)
    else:
        _relu_grad_matmul[grid](grad, weight, activations, out, partial, M, N, K, **options)
    return out, partial.sum(0)  # row blocks' sums added in a fixed order: the same bits every run


def column_sums(x: torch.Tensor) -> torch.Tensor:
    """``x.sum(0)``, accumulated and returned in float32 or wider."""
    return x.sum(0, dtype=torch.promote_types(x.dtype, torch.float32))


@functools.cache
def available() -> bool:
    """Whether the fused kernel runs here: Triton and a CUDA device with 16-bit tensor cores (sm_80 on)."""
    return triton is not None and torch.cuda.is_available() and _capability(None) >= (8, 0)


@functools.cache
def _capability(device) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device)


def _config(N: int, K: int, device: torch.device) -> tuple | None:
    if N < 64:
        return THIN
    if N % 8 == 0 and K % 8 == 0 and _capability(device) >= (9, 0):
        return TMA
    return PLAIN if K <= 512 else None


if triton is not None:
    @triton.jit
    def _tile(M, K, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
        """This program's output tile (row block, column block). Tiles go in groups of GROUP_M row
        blocks, so that neighbouring programs share the weight's columns in L2."""
        pid = tl.program_id(0)
        group = GROUP_M * tl.cdiv(K, BLOCK_K)
        first_m = (pid // group) * GROUP_M
        group_m = min(tl.cdiv(M, BLOCK_M) - first_m, GROUP_M)
        return first_m + (pid % group) % group_m, (pid % group) // group_m

    @triton.jit
    def _relu_grad_matmul(g_ptr, w_ptr, y_ptr, out_ptr, partial_ptr, M, N, K, BLOCK_M: tl.constexpr,
                          BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
        pid_m, pid_k = _tile(M, K, BLOCK_M, BLOCK_K, GROUP_M)
        rm = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)  # rows × K may pass 2³¹
        rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
        rn = tl.arange(0, BLOCK_N)
        acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
        for step in range(0, tl.cdiv(N, BLOCK_N)):
            n = step * BLOCK_N + rn
            a = tl.load(g_ptr + rm[:, None] * N + n[None, :], mask=(rm[:, None] < M) & (n[None, :] < N), other=0.0)
            b = tl.load(w_ptr + n[:, None] * K + rk[None, :], mask=(n[:, None] < N) & (rk[None, :] < K), other=0.0)
            acc = tl.dot(a, b, acc)
        inside = (rm[:, None] < M) & (rk[None, :] < K)
        y = tl.load(y_ptr + rm[:, None] * K + rk[None, :], mask=inside, other=0.0)
        out = tl.where(y > 0, acc, 0.0).to(out_ptr.dtype.element_ty)
        tl.store(out_ptr + rm[:, None] * K + rk[None, :], out, mask=inside)
        tl.store(partial_ptr + pid_m * K + rk, tl.sum(out.to(tl.float32), axis=0), mask=rk < K)

    @triton.jit
    def _relu_grad_matmul_tma(g_desc, w_desc, y_desc, out_desc, partial_ptr, M, N, K, BLOCK_M: tl.constexpr,
                              BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
        pid_m, pid_k = _tile(M, K, BLOCK_M, BLOCK_K, GROUP_M)
        off_m, off_k = pid_m * BLOCK_M, pid_k * BLOCK_K
        acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
        for step in range(0, tl.cdiv(N, BLOCK_N)):
            acc = tl.dot(g_desc.load([off_m, step * BLOCK_N]), w_desc.load([step * BLOCK_N, off_k]), acc)
        y = y_desc.load([off_m, off_k])  # rows past M read as zeros, so they add nothing to the sums
        out = tl.where(y > 0, acc, 0.0).to(y.dtype)
        out_desc.store([off_m, off_k], out)
        rk = off_k + tl.arange(0, BLOCK_K)
        tl.store(partial_ptr + pid_m * K + rk, tl.sum(out.to(tl.float32), axis=0), mask=rk < K)

    @triton.jit
    def _encoded_features(coords_ptr, freqs_ptr, z_ptr, out_ptr, R, P, n, zdim, C, BLOCK_R: tl.constexpr,
                          BLOCK_J: tl.constexpr, BLOCK_T: tl.constexpr):
        rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        live = rows < R
        starts = rows.to(tl.int64) * C  # rows × C may pass 2³¹
        tile = tl.program_id(1)
        if tile * BLOCK_J < n:  # a tile of phases: their sines in columns j, their cosines in n + j
            j = tile * BLOCK_J + tl.arange(0, BLOCK_J)
            sign = tl.where(tl.load(coords_ptr + rows * 3 + 2, mask=live, other=0.0) < 0, -1.0, 1.0)
            phase = tl.zeros((BLOCK_R, BLOCK_J), dtype=tl.float32)
            for axis in tl.static_range(3):  # the order of torch's float32 product: the same phases, bit for bit
                c = tl.load(coords_ptr + rows * 3 + axis, mask=live, other=0.0) * sign
                phase += c[:, None] * tl.load(freqs_ptr + axis * n + j, mask=j < n, other=0.0)[None, :]
            where, inside = out_ptr + starts[:, None] + j[None, :], live[:, None] & (j < n)[None, :]
            tl.store(where, tl.sin(phase).to(out_ptr.dtype.element_ty), mask=inside)
            tl.store(where + n, tl.cos(phase).to(out_ptr.dtype.element_ty), mask=inside)
        else:  # the last tile: the latents, then zeros
            t = tl.arange(0, BLOCK_T)
            latent = live[:, None] & (t < zdim)[None, :]
            z = tl.load(z_ptr + (rows // P)[:, None] * zdim + t[None, :], mask=latent, other=0.0)
            tl.store(out_ptr + starts[:, None] + 2 * n + t[None, :], z.to(out_ptr.dtype.element_ty),
                     mask=live[:, None] & (2 * n + t < C)[None, :])
