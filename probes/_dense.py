"""Dense plumbing of the ridge engine: large buffers and matrix products on the CPU.

The arithmetic lives in :mod:`probes._ridge` and :mod:`probes._linear`; this module holds how
it meets memory and BLAS: fresh large blocks with transparent huge pages
(:func:`large_empty`), one spent buffer reused for a fit's later temporaries
(:class:`Workspace`), and products through numpy's BLAS on the tensors' own memory with the
threads torch was given (:func:`gemm`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = ["Workspace", "blas_threads", "gemm", "large_empty", "numpy_blas"]


def large_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.empty`` for a large block; on the CPU backed by numpy's allocator.

    numpy asks the kernel for transparent huge pages on large blocks (``madvise``, numpy >=
    1.22 on Linux; scikit-learn's arrays get them), torch's CPU allocator does not unless
    the process sets ``THP_MEM_ALLOC_ENABLE``: first touch of a fresh 100 MB block then
    costs one fault per 2 MiB instead of per 4 KiB, which is most of the cost of gathering
    the training targets at the benchmark size.  Elsewhere (or for other dtypes) plain
    ``torch.empty``.
    """
    if torch.device(device).type == "cpu" and dtype in (torch.float32, torch.float64):
        np_dtype = np.float32 if dtype == torch.float32 else np.float64
        return torch.from_numpy(np.empty(shape, dtype=np_dtype))
    return torch.empty(shape, dtype=dtype, device=device)


@functools.cache
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def blas_threads() -> Iterator[None]:
    """numpy's and scipy's BLAS limited to torch's thread count for the enclosed calls.

    The CPU fast paths below run through numpy's/scipy's BLAS, whose thread pools ignore
    ``torch.set_num_threads``; this keeps the probe's computation on the threads torch was
    given (a worker process limited to one thread stays at one).  ``threadpoolctl`` is what
    scikit-learn uses for the same purpose.
    """
    with _blas_controller().limit(limits=torch.get_num_threads(), user_api="blas"):
        yield


def numpy_blas(*tensors: torch.Tensor) -> bool:
    """Whether ``tensors`` can take numpy's BLAS: CPU, one float32/float64 dtype, no grad."""
    first = tensors[0]
    return all(
        t.device.type == "cpu"
        and t.dtype == first.dtype
        and t.dtype in (torch.float32, torch.float64)
        and not t.requires_grad
        for t in tensors
    )


def _blasable(t: torch.Tensor) -> torch.Tensor:
    """``t`` (2-D) as it is when BLAS can read it in place (one unit stride, the other at
    least the extent of that axis, as numpy requires for its BLAS path), else a contiguous
    copy: numpy's fallback for other layouts is an element loop, orders of magnitude slower."""
    (r, c), (sr, sc) = t.shape, t.stride()
    if (sc == 1 and sr >= max(c, 1)) or (sr == 1 and sc >= max(r, 1)):
        return t
    return t.contiguous()


def gemm(
    a: torch.Tensor,
    b: torch.Tensor,
    out: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``a @ b (+ bias)`` for 2-D ``a`` (m, k), ``b`` (k, n), ``bias`` (1, n): shape (m, n).

    Written into ``out`` when given: an (m, n) tensor with a unit inner stride (a row block of
    a larger matrix is fine, as BLAS writes with a leading dimension).  On the CPU the product
    runs through numpy's BLAS (the OpenBLAS build numpy ships, which scikit-learn's ridge uses
    too) on the tensors' own memory: strided views with a unit inner stride go to BLAS
    without a copy, and on CPUs where torch's MKL build takes a generic code path (AMD) it is
    5–10% faster on the probe's shapes (``benchmarks/probes.py``).  Elsewhere
    ``torch.mm``/``addmm``.
    """
    rows = out is None or (out.stride(1) == 1 and out.stride(0) >= max(out.shape[1], 1))
    if numpy_blas(a, b) and (out is None or (rows and numpy_blas(out, a))):
        o = out if out is not None else large_empty((a.shape[0], b.shape[1]), a.dtype, a.device)
        with blas_threads():
            np.matmul(_blasable(a).numpy(), _blasable(b).numpy(), out=o.numpy())
        if bias is not None:
            o += bias
        return o
    res = torch.mm(a, b) if bias is None else torch.addmm(bias, a, b)
    if out is None:
        return res
    return out.copy_(res)


class Workspace:
    """Views into one spent buffer, handed out in turn (bump allocation, ``reset`` reuses).

    A fit's large temporaries (held-out blocks, predictions, the null's targets) are as big as
    its gathered training targets and live after them.  Fresh memory of that size costs a
    page fault per 4 KiB on first touch (about as long as the copy that fills it), so they
    are carved out of the training targets' buffer once the fit is done with it.  A request
    that does not fit gets fresh memory.
    """

    def __init__(self, buf: torch.Tensor) -> None:
        self._bytes = buf.reshape(-1).view(torch.uint8)  # buf is contiguous: a view
        self._used = 0

    def reset(self) -> None:
        self._used = 0

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        size = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
        start = -(-self._used // 16) * 16  # aligned for any dtype
        if start + size > self._bytes.numel():
            return large_empty(shape, dtype, self._bytes.device)
        self._used = start + size
        return self._bytes[start : start + size].view(dtype).view(shape)

    def gather(self, src: torch.Tensor, dim: int, index: torch.Tensor, dtype: torch.dtype):
        """``src.index_select(dim, index).to(dtype)`` written into the workspace."""
        shape = list(src.shape)
        shape[dim] = index.numel()
        out = self.take(tuple(shape), dtype)
        if src.dtype == dtype:
            return torch.index_select(src, dim, index, out=out)
        # Converting: in chunks of about 2M values, so no full-size temporary is allocated.
        row = max(1, src.numel() // max(1, src.shape[dim]))
        step = max(1, (1 << 21) // row)
        for i in range(0, index.numel(), step):
            out.narrow(dim, i, min(step, index.numel() - i)).copy_(
                src.index_select(dim, index[i : i + step])
            )
        return out
