"""Record latents from inside training frameworks.

- :class:`LightningRecorder`: a ``lightning.pytorch.Callback`` (extra ``latentgeo[lightning]``).
- :class:`HFRecorder`: a ``transformers.TrainerCallback`` (extra ``latentgeo[hf]``).

Both build a :class:`latentgeo.LatentRecorder` when training starts, record at the
framework's global (optimizer) step following a schedule, never write a step twice, resume the
same store when the run resumes, and close the store when training ends.

The frameworks are optional: importing this package never imports them, and using a
callback whose framework is missing raises an ``ImportError`` that names the extra to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["HFRecorder", "LightningRecorder"]

# public name -> (implementation module, framework module, distribution, extra)
_OPTIONAL = {
    "LightningRecorder": ("latentgeo.callbacks._lightning", "lightning.pytorch", "lightning"),
    "HFRecorder": ("latentgeo.callbacks._hf", "transformers", "hf"),
}

if TYPE_CHECKING:  # pragma: no cover
    from latentgeo.callbacks._hf import HFRecorder
    from latentgeo.callbacks._lightning import LightningRecorder


def __getattr__(name: str) -> Any:
    # PEP 562: the framework is imported on first use of its callback, so a missing optional
    # dependency only fails for the user who needs it, with the command that fixes it.
    if name in _OPTIONAL:
        module, framework, extra = _OPTIONAL[name]
        try:
            importlib.import_module(framework)
        except ImportError as exc:
            raise ImportError(
                f"latentgeo.callbacks.{name} needs the optional dependency {framework!r}, "
                f"which could not be imported ({exc}); install it with: "
                f"pip install 'latentgeo[{extra}]'"
            ) from exc
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'latentgeo.callbacks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
