"""A hidden ReLU layer's products with cuBLASLt's ReLU epilogues against torch's (one GPU): a negative result.

    python -m benchmarks.bench_cublaslt [--rows 205600] [--width 1024] [--jsonl out.jsonl]

The decoder's layers at D = 128 and batch 32 multiply (rows = 32 × 6,425 pixels, width) activations
by (width, width) weights. Each form of a layer's forward and backward pass is timed with CUDA
events (median of 20 after 5 warm-up), in bfloat16:

- forward: torch's product with the bias and ReLU in its epilogue, against cuBLASLt's that also
  writes the ReLU's bit mask (``RELU_AUX_BIAS``);
- backward: torch's (``g @ W``, ``threshold_backward``, the bias's sum, ``gᵀ x``) against cuBLASLt's
  input-gradient product applying the mask (``DRELU``), with the bias gradient summed in its epilogue
  (``DRELU_BGRAD``) or in the weight-gradient product's (``BGRADB``);
- the output layer's (2 outputs) input gradient, where the product has k = 2.

torch exposes none of these epilogues, so this script calls the cuBLASLt that torch loaded through
``ctypes`` (all tensors row-major; each product computed as its transpose). On one H200 with CUDA
13's cuBLASLt they were slower than torch's separate passes (docs/benchmarks.md), so cryonb fuses
the ReLU's gradient with a Triton kernel of its own instead (:mod:`cryonb.core.kernels`). Kept as
the record of that measurement; the last lines say which products cuBLASLt had an algorithm for.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import glob
import os
import sys

import torch

from benchmarks.bench_relu_grad import median_us
from benchmarks.records import emit

# cuBLASLt's enumerations (cublasLt.h, CUDA 12 and 13)
_COMPUTE_32F = 68
_R_32F, _R_16F, _R_16BF = 0, 2, 14
_OP_N, _OP_T = 0, 1
_DESC_TRANSA, _DESC_TRANSB, _DESC_EPILOGUE, _DESC_BIAS_POINTER = 3, 4, 7, 8
_DESC_AUX_POINTER, _DESC_AUX_LD, _DESC_BIAS_DATA_TYPE = 11, 12, 26
_PREF_MAX_WORKSPACE_BYTES = 1
RELU_AUX_BIAS, DRELU_BGRAD, DRELU, BGRADB = 134, 152, 136, 512
_WORKSPACE_BYTES = 32 * 2**20
_DTYPES = {torch.bfloat16: _R_16BF, torch.float16: _R_16F}


class _HeuristicResult(ctypes.Structure):
    _fields_ = [("algo", ctypes.c_uint64 * 8), ("workspace_size", ctypes.c_size_t), ("state", ctypes.c_int),
                ("waves_count", ctypes.c_float), ("reserved", ctypes.c_int * 4)]


def _library_paths() -> list[str]:
    """libcublasLt as torch loaded it (its path in this process's map), then where pip puts it."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            paths += [line.split()[-1] for line in maps if "libcublasLt.so" in line]
    except OSError:
        pass
    for site in sys.path:
        paths += sorted(glob.glob(os.path.join(site, "nvidia", "**", "libcublasLt.so*"), recursive=True))
    return paths + ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"]


@functools.cache
def _lib():
    torch.ones(8, 8, device="cuda") @ torch.ones(8, 8, device="cuda")  # torch loads cuBLAS(Lt) lazily
    for path in _library_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        handle = ctypes.c_void_p()
        if lib.cublasLtCreate(ctypes.byref(handle)) == 0:
            return lib, handle
    raise OSError("libcublasLt was not found beside torch's CUDA libraries")


@functools.cache
def available() -> bool:
    """Whether the fused products can run here (a CUDA device and its cuBLASLt)."""
    if not torch.cuda.is_available():
        return False
    try:
        _lib()
    except (OSError, AttributeError, RuntimeError):
        return False
    return True


def _check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"cuBLASLt {what} failed with status {status}")


def _set(setter, obj, attribute: int, value: ctypes._SimpleCData) -> None:
    _check(setter(obj, attribute, ctypes.byref(value), ctypes.sizeof(value)), f"attribute {attribute}")


@functools.cache
def _workspace(device: int) -> torch.Tensor:
    return torch.empty(_WORKSPACE_BYTES, dtype=torch.uint8, device=f"cuda:{device}")


class _Plan:
    """A column-major product ``D (m×n) = op(A) op(B)`` with an epilogue, and cuBLASLt's algorithm."""

    def __init__(self, m, n, k, transa, transb, lda, ldb, dtype, epilogue, bias_dtype):
        lib, handle = _lib()
        self.desc = ctypes.c_void_p()
        _check(lib.cublasLtMatmulDescCreate(ctypes.byref(self.desc), _COMPUTE_32F, _R_32F), "descriptor")
        set_desc = lib.cublasLtMatmulDescSetAttribute
        _set(set_desc, self.desc, _DESC_TRANSA, ctypes.c_int32(transa))
        _set(set_desc, self.desc, _DESC_TRANSB, ctypes.c_int32(transb))
        _set(set_desc, self.desc, _DESC_EPILOGUE, ctypes.c_int32(epilogue))
        _set(set_desc, self.desc, _DESC_AUX_LD, ctypes.c_int64(m))
        self.has_bias = epilogue in (RELU_AUX_BIAS, DRELU_BGRAD, BGRADB)
        if self.has_bias:
            _set(set_desc, self.desc, _DESC_BIAS_DATA_TYPE, ctypes.c_int32(bias_dtype))
        rows_a, cols_a = (k, m) if transa == _OP_T else (m, k)
        rows_b, cols_b = (n, k) if transb == _OP_T else (k, n)
        self.a, self.b, self.d = (self._layout(lib, dtype, r, c, ld)
                                  for r, c, ld in ((rows_a, cols_a, lda), (rows_b, cols_b, ldb), (m, n, m)))
        preference = ctypes.c_void_p()
        _check(lib.cublasLtMatmulPreferenceCreate(ctypes.byref(preference)), "preference")
        _set(lib.cublasLtMatmulPreferenceSetAttribute, preference, _PREF_MAX_WORKSPACE_BYTES,
             ctypes.c_uint64(_WORKSPACE_BYTES))
        result, found = _HeuristicResult(), ctypes.c_int(0)
        status = lib.cublasLtMatmulAlgoGetHeuristic(handle, self.desc, self.a, self.b, self.d, self.d, preference,
                                                    1, ctypes.byref(result), ctypes.byref(found))
        lib.cublasLtMatmulPreferenceDestroy(preference)
        if status != 0 or found.value == 0:
            raise RuntimeError(f"cuBLASLt has no algorithm for epilogue {epilogue} at {m}×{n}×{k} (status {status})")
        self.algo = result.algo

    @staticmethod
    def _layout(lib, dtype, rows, cols, ld):
        layout = ctypes.c_void_p()
        _check(lib.cublasLtMatrixLayoutCreate(ctypes.byref(layout), dtype, ctypes.c_uint64(rows), ctypes.c_uint64(cols),
                                              ctypes.c_int64(ld)), "layout")
        return layout

    def __call__(self, a: torch.Tensor, b: torch.Tensor, d: torch.Tensor, bias: torch.Tensor | None,
                 aux: torch.Tensor | None):
        lib, handle = _lib()
        if self.has_bias:
            _set(lib.cublasLtMatmulDescSetAttribute, self.desc, _DESC_BIAS_POINTER, ctypes.c_void_p(bias.data_ptr()))
        if aux is not None:
            _set(lib.cublasLtMatmulDescSetAttribute, self.desc, _DESC_AUX_POINTER, ctypes.c_void_p(aux.data_ptr()))
        alpha, beta = ctypes.c_float(1.0), ctypes.c_float(0.0)
        workspace = _workspace(d.device.index)
        stream = ctypes.c_void_p(torch.cuda.current_stream(d.device).cuda_stream)
        _check(lib.cublasLtMatmul(handle, self.desc, ctypes.byref(alpha), ctypes.c_void_p(a.data_ptr()), self.a,
                                  ctypes.c_void_p(b.data_ptr()), self.b, ctypes.byref(beta),
                                  ctypes.c_void_p(d.data_ptr()), self.d, ctypes.c_void_p(d.data_ptr()), self.d,
                                  ctypes.byref(self.algo), ctypes.c_void_p(workspace.data_ptr()),
                                  ctypes.c_size_t(_WORKSPACE_BYTES), stream), "matmul")


plans: dict[tuple, _Plan | None] = {}  # by product: its plan, or None where cuBLASLt has none


def _plan(m, n, k, transa, transb, lda, ldb, dtype, epilogue, bias_dtype) -> _Plan | None:
    """The plan for this product, or None where cuBLASLt has none (the caller computes it unfused)."""
    key = (m, n, k, transa, transb, lda, ldb, dtype, epilogue, bias_dtype)
    if key not in plans:
        try:
            if m % 128 and epilogue != BGRADB:  # a ReLU mask's leading dimension: bits, a multiple of 128
                raise RuntimeError("no mask")
            plans[key] = _Plan(*key)
        except RuntimeError:
            plans[key] = None
    return plans[key]


def column_sums(x: torch.Tensor) -> torch.Tensor:
    """``x.sum(0)`` accumulated and returned in at least float32."""
    return x.sum(0, dtype=torch.promote_types(x.dtype, torch.float32))


def _fits(x: torch.Tensor) -> bool:
    return x.is_cuda and x.dtype in _DTYPES and available()


def linear_relu(x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``relu(x Wᵀ + b)`` (M, N) and the bit mask of its positive entries, for :func:`grad_relu`.

    ``x`` (M, K), ``weight`` (N, K) and ``bias`` (N,) share a dtype and are contiguous. The mask is
    None where cuBLASLt cannot write one (on a CPU, in float32, at widths that are not multiples of
    128): the product is then torch's, with the same values, and :func:`grad_relu` uses the activations.
    """
    (M, K), N = x.shape, weight.shape[0]
    plan = _plan(N, M, K, _OP_T, _OP_N, K, K, _DTYPES[x.dtype], RELU_AUX_BIAS, _DTYPES[x.dtype]) if _fits(x) else None
    if plan is None:
        return torch._addmm_activation(bias, x, weight.t()), None
    y = torch.empty(M, N, device=x.device, dtype=x.dtype)
    mask = torch.empty(M, N // 8, device=x.device, dtype=torch.uint8)
    plan(weight, x, y, bias, mask)
    return y, mask


def grad_relu(grad: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor | None, activations: torch.Tensor,
              bias_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The gradient that reaches the previous ReLU layer's pre-activation, and that layer's bias gradient.

    ``grad`` (M, N) is the gradient of this layer's pre-activation and ``weight`` (N, K) its weight;
    ``mask`` and ``activations`` (M, K) are the previous layer's from :func:`linear_relu`. Returns
    ``(grad @ W) ⊙ (activations > 0)`` (M, K) and its column sums (K,) in at least float32 (None unless
    ``bias_grad``), in one product where the mask is there.
    """
    (M, N), K = grad.shape, weight.shape[1]
    epilogue = DRELU_BGRAD if bias_grad else DRELU
    plan, sums_dtype = _bias_plan((K, M, N, _OP_N, _OP_N, K, N, _DTYPES[grad.dtype], epilogue), grad.dtype) \
        if mask is not None else (None, None)
    if plan is None:
        out = torch.ops.aten.threshold_backward(grad @ weight, activations, 0)
        return out, (column_sums(out) if bias_grad else None)
    out = torch.empty(M, K, device=grad.device, dtype=grad.dtype)
    sums = torch.empty(K, device=grad.device, dtype=sums_dtype) if bias_grad else None
    plan(weight, grad, out, sums, mask)
    return out, (sums.float() if bias_grad else None)


def _bias_plan(key: tuple, dtype: torch.dtype) -> tuple[_Plan | None, torch.dtype]:
    """A plan whose bias gradient is float32, else one in ``dtype`` (the library may offer only that)."""
    plan = _plan(*key, _R_32F)
    return (plan, torch.float32) if plan is not None else (_plan(*key, _DTYPES[dtype]), dtype)


def weight_grad(grad: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``gradᵀ x`` (N, K), a layer's weight gradient, and ``grad``'s column sums (N,), its bias
    gradient (float32), from one product (``BGRADB``) where cuBLASLt has one."""
    (M, N), K = grad.shape, x.shape[1]
    plan, sums_dtype = _bias_plan((K, N, M, _OP_N, _OP_T, K, N, _DTYPES[x.dtype], BGRADB), x.dtype) \
        if _fits(x) else (None, None)
    if plan is None:
        return grad.t() @ x, column_sums(grad)
    out = torch.empty(N, K, device=x.device, dtype=x.dtype)
    sums = torch.empty(N, device=x.device, dtype=sums_dtype)
    plan(x, grad, out, sums, None)
    return out, sums.float()


def forms(rows: int, width: int) -> dict:
    torch.manual_seed(0)
    bf = dict(device="cuda", dtype=torch.bfloat16)
    x = torch.randn(rows, width, **bf)
    w, w_next = ((torch.randn(width, width, device="cuda") / width**0.5).bfloat16() for _ in range(2))
    b = (torch.randn(width, device="cuda") / 10).bfloat16()
    y, mask = linear_relu(x, w, b)
    g_next = torch.randn(rows, width, **bf) / 100
    out_w, g_out = torch.randn(2, width, **bf), torch.randn(rows, 2, **bf)

    def torch_backward():
        g = torch.ops.aten.threshold_backward(g_next @ w_next, y, 0)
        return g.t() @ x, g.sum(0)

    def drelu_bgrad():
        g, bias_grad = grad_relu(g_next, w_next, mask, y)
        return g.t() @ x, bias_grad

    def drelu_then_bgradb():
        g, _ = grad_relu(g_next, w_next, mask, y, bias_grad=False)
        return weight_grad(g, x)

    def drelu_then_sum():
        g, _ = grad_relu(g_next, w_next, mask, y, bias_grad=False)
        return g.t() @ x, g.sum(0)

    return {
        "forward, torch": lambda: torch._addmm_activation(b, x, w.t()),
        "forward, RELU_AUX_BIAS": lambda: linear_relu(x, w, b),
        "backward, torch": torch_backward,
        "backward, DRELU_BGRAD + torch wgrad": drelu_bgrad,
        "backward, DRELU + BGRADB wgrad": drelu_then_bgradb,
        "backward, DRELU + torch wgrad + sum": drelu_then_sum,
        "output layer dgrad, torch": lambda: torch.ops.aten.threshold_backward(g_out @ out_w, y, 0).sum(0),
        "output layer dgrad, DRELU_BGRAD": lambda: grad_relu(g_out, out_w, mask, y),
        "just g @ W": lambda: g_next @ w_next,
        "just gᵀ x": lambda: g_next.t() @ x,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32 * 6425)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args(argv)
    for name, fn in forms(args.rows, args.width).items():
        record = {"rows": args.rows, "width": args.width, "form": name, "us": round(median_us(fn), 1),
                  "device": torch.cuda.get_device_name()}
        emit(record, args.jsonl)
    for key, plan in plans.items():
        print("m n k transa transb lda ldb dtype epilogue bias_dtype", key, "cuBLASLt" if plan else "none: torch's")


if __name__ == "__main__":
    main()
