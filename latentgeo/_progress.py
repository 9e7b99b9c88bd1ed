"""Progress bars that a terminal shows live and a log file can still be read with.

Every progress bar of latentgeo goes through :func:`progress_bar`.  On a terminal (and in a
notebook, where ``tqdm.auto`` draws a widget) it is tqdm as usual.  When the stream is not a
terminal (a batch job's log file, a pipe, CI), tqdm would write one ``\\r``-separated update
per refresh into a single line, and ``set_postfix`` refreshes at every call: a postfix set at
every training step wrote one update per step (the demo wrote ~1,800 into one line).  There
the bar follows tqdm's advice for non-TTY output: sparse updates (``mininterval`` of
:data:`NON_TTY_MININTERVAL` seconds, unless ``TQDM_MININTERVAL`` is set in the environment,
tqdm's own override), ``set_postfix``/``set_description`` that wait for the next update, and
the final state left in the log.

This module imports tqdm; import it where a bar is drawn, not from ``latentgeo/__init__``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, Any

import tqdm.auto
from tqdm import autonotebook
from tqdm.std import tqdm as std_tqdm

__all__ = ["NON_TTY_MININTERVAL", "is_interactive", "progress_bar"]

#: Seconds between two updates of a bar written to a stream that is not a terminal.
NON_TTY_MININTERVAL = 30.0


class _LogBar(std_tqdm):
    """tqdm whose postfix and description wait for the next (sparse) update."""

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = False, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=refresh, **kwargs)

    def set_description(self, desc: str | None = None, refresh: bool = False) -> None:
        super().set_description(desc, refresh=refresh)


def is_interactive(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (``isatty()``); a closed or odd stream is not."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # closed or detached stream
        return False


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str | None = None,
    total: float | None = None,
    unit: str = "it",
    disable: bool = False,
    leave: bool = True,
    file: IO[str] | None = None,
    **kwargs: Any,
) -> std_tqdm:
    """A tqdm progress bar: live on a terminal or in a notebook, sparse in a log.

    Parameters
    ----------
    iterable : iterable, optional
        Iterated over, as with ``tqdm(iterable)``.
    desc, total, unit, disable, leave
        As in ``tqdm``.  Off a terminal ``leave`` is always True, so the final count stays in
        the log.
    file : text stream, optional
        Where the bar is written (``sys.stderr`` by default).
    **kwargs
        Passed to ``tqdm``; an explicit ``mininterval`` wins over the non-TTY default.

    Returns
    -------
    tqdm.tqdm
        ``tqdm.auto.tqdm`` on a terminal or in a notebook; otherwise a ``tqdm`` with
        ``mininterval=NON_TTY_MININTERVAL`` whose ``set_postfix``/``set_description`` do not
        refresh by default.
    """
    stream = sys.stderr if file is None else file
    # tqdm.autonotebook resolves to the widget class inside a Jupyter kernel only.
    notebook = file is None and autonotebook.tqdm is not std_tqdm
    common = {"desc": desc, "total": total, "unit": unit, "disable": disable, "file": file}
    if notebook or is_interactive(stream):
        return tqdm.auto.tqdm(iterable, leave=leave, **common, **kwargs)
    if "TQDM_MININTERVAL" not in os.environ:
        kwargs.setdefault("mininterval", NON_TTY_MININTERVAL)
    return _LogBar(iterable, leave=True, **common, **kwargs)
