"""Progress bars: live on a terminal, a few lines in a log (non-TTY stream)."""

from __future__ import annotations

import io
import subprocess
import sys

from latentgeo._progress import NON_TTY_MININTERVAL, is_interactive, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _updates(text: str) -> int:
    # Each redraw of the bar writes its description once ("\r" + state; a pipe read as text
    # turns "\r" into a newline).
    return text.count("train")


def _run(stream, n=2000, **kwargs):
    bar = progress_bar(range(n), desc="train", unit="step", file=stream, **kwargs)
    for i in bar:
        bar.set_postfix(loss=f"{1.0 / (i + 1):.3f}")  # at every step, as a training loop does
    return stream.getvalue()


def test_bar_in_a_log_writes_a_few_updates(monkeypatch):
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    log = io.StringIO()
    assert not is_interactive(log)
    text = _run(log)
    # The opening state and the final one; nothing per step.
    assert 1 <= _updates(text) <= 3, _updates(text)
    assert "2000/2000" in text.rsplit("\r", 1)[-1]  # the final state is left in the log
    assert NON_TTY_MININTERVAL >= 10


def test_bar_on_a_terminal_stays_live():
    term = _Terminal()
    assert is_interactive(term)
    text = _run(term, mininterval=0, miniters=1)
    # Live: set_postfix refreshes at every step on a terminal, as plain tqdm does.
    assert _updates(text) >= 2000


def _in_a_pipe(env_extra=None):
    # A real non-TTY stderr (a pipe, as under a batch scheduler), through the default stream.
    import os

    code = (
        "from latentgeo._progress import progress_bar\n"
        "bar = progress_bar(range(3000), desc='train')\n"
        "for i in bar:\n"
        "    bar.set_postfix(i=i)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    env.update(env_extra or {})
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    return out.stderr


def test_a_process_writing_to_a_pipe_logs_few_updates():
    err = _in_a_pipe()
    assert 1 <= _updates(err) <= 3, err[:500]
    assert "3000/3000" in err


def test_tqdm_environment_override_is_honoured():
    # tqdm's own TQDM_MININTERVAL wins over latentgeo's non-TTY default.
    err = _in_a_pipe({"TQDM_MININTERVAL": "0", "TQDM_MINITERS": "1"})
    assert _updates(err) >= 3000
