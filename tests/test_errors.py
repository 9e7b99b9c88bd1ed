"""One error hierarchy: every exception the packages define sits under LatentgeoError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import latentgeo
from latentgeo import LatentgeoError

PACKAGES = ("latentgeo", "probes", "trajectories")


def _own_classes():
    seen = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        names = [package] + [
            m.name for m in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")
        ]
        for name in names:
            if name.endswith("__main__"):
                continue
            module = importlib.import_module(name)
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if obj.__module__.split(".")[0] in PACKAGES:
                    seen[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return seen


def test_every_own_exception_is_a_latentgeo_error():
    classes = _own_classes()
    errors = {
        name: cls
        for name, cls in classes.items()
        if issubclass(cls, BaseException) and not issubclass(cls, Warning)
    }
    assert len(errors) >= 6  # the pipeline's, the store's, the writer's, the action check's
    outside = sorted(name for name, cls in errors.items() if not issubclass(cls, LatentgeoError))
    assert outside == []
    # No non-exception is called an error (e.g. a result dataclass).
    misnamed = sorted(
        name
        for name, cls in classes.items()
        if cls.__name__.endswith("Error") and not issubclass(cls, BaseException)
    )
    assert misnamed == []


@pytest.mark.parametrize(
    ("path", "builtin"),
    [
        ("latentgeo.pipeline.UsageError", ValueError),
        ("latentgeo.pipeline.PipelineError", RuntimeError),
        ("latentgeo.store.StoreLockedError", RuntimeError),
        ("latentgeo.record._recorder.WriterError", RuntimeError),
        ("latentgeo.actions.ActionCheckError", AssertionError),
    ],
)
def test_errors_keep_their_builtin_base(path, builtin):
    module, name = path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, LatentgeoError) and issubclass(cls, builtin)


def test_latentgeo_error_is_exported_without_heavy_imports():
    assert "LatentgeoError" in latentgeo.__all__
    assert latentgeo.LatentgeoError is LatentgeoError
    assert LatentgeoError.__mro__[1] is Exception
