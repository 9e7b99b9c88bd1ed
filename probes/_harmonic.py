"""The runner's hook for runs of a continuous group (the harmonic fit lives in the core).

The harmonic least-squares spectrum itself is :func:`latentgeo.groups.harmonic_energies`
(the group-Fourier core, :mod:`latentgeo.groups._harmonic`), with its degree rule, basis and
names; this module only reads a run's element values for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from latentgeo.groups import Group
    from latentgeo.store import Run

__all__ = ["run_element_values"]


def run_element_values(run: Run, group: Group, n_elements: int) -> np.ndarray:
    """The element values of a continuous group's run, as the harmonic fit needs them.

    Stores written without element values read back as indices ``arange(n)``; for those the
    orbit axis was the group's uniform grid (SO(2)), which :meth:`grid` gives back.

    Raises
    ------
    ValueError
        If the run holds indices and the group has no grid of that size, or the number of
        values differs from the run's element axis.
    """
    values = np.asarray(run.element_values)
    if values.dtype.kind in "iu":
        try:
            values = group.grid(len(values))
        except NotImplementedError:
            raise ValueError(
                f"run {run!r} stores no element values of {group!r} (only indices); record "
                "it with an action of that group (its element_values are stored)"
            ) from None
    values = np.asarray(values, dtype=np.float64)
    if len(values) != n_elements:
        raise ValueError(
            f"run {run!r} stores {len(values)} element values for {n_elements} elements"
        )
    return values
