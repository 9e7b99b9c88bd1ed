"""Whether a model's forward is a collective; the layer lookup the recorder hooks.

Layer names resolve in the private core (:mod:`latentgeo._layers`, one place for the recorder
and the probes that intervene on layers); they are re-exported here for the recorder.
"""

from __future__ import annotations

from typing import Any

import torch

from latentgeo._layers import layer_modules, resolve_layers, unwrap_model

__all__ = ["collective_forward", "layer_modules", "resolve_layers", "unwrap_model"]


def collective_forward(module: torch.nn.Module) -> str | None:
    """Why a forward of ``module`` is a collective of all ranks, or None if it is not.

    A forward is a collective when parameters are sharded across ranks and gathered on use:
    FSDP1 (``FullyShardedDataParallel``), FSDP2 (``fully_shard``), tensor parallelism
    (``DTensor`` parameters) and DeepSpeed ZeRO-3 (partitioned parameters).  DDP is not: its
    forward is a collective only through the wrapper, which the recorder looks through.
    """
    if not (torch.distributed.is_available()):
        return None
    fsdp1: Any = ()
    fsdp2: Any = ()
    dtensor: Any = ()
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel as fsdp1
    except ImportError:  # pragma: no cover
        pass
    try:
        from torch.distributed.fsdp import FSDPModule as fsdp2
    except ImportError:  # pragma: no cover
        pass
    try:
        from torch.distributed.tensor import DTensor as dtensor
    except ImportError:  # pragma: no cover
        pass
    for mod in module.modules():
        if fsdp1 and isinstance(mod, fsdp1):
            return "FSDP1 (FullyShardedDataParallel)"
        if fsdp2 and isinstance(mod, fsdp2):
            return "FSDP2 (fully_shard)"
    for p in module.parameters():
        if dtensor and isinstance(p, dtensor):
            return "DTensor parameters (tensor/sequence parallel or FSDP2)"
        if hasattr(p, "ds_status") or hasattr(p, "ds_id"):
            return "DeepSpeed ZeRO-3 partitioned parameters"
    return None
