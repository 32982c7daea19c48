"""The commands' terminal output with rich: a Console over a command's stdout or stderr, and
the progress bars of `wiki ... --wait` (one operation's steps) and `run ... --wait` (a run's
wikis per size class).

On a terminal the bars redraw in place; into a file or a pipe rich prints them once, as
they stand when the bars stop, so a log holds the end state and no control codes.
"""

from __future__ import annotations

from django.core.management.base import OutputWrapper
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class _CommandStream:
    """What rich writes to: the command's stream (so call_command can capture it), without
    Django's added line endings and styles."""

    def __init__(self, out: OutputWrapper):
        self._out = out

    def write(self, text: str) -> int:
        self._out.write(text, style_func=_unstyled, ending="")
        return len(text)

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return self._out.isatty()

    @property
    def encoding(self) -> str:
        return getattr(self._out, "encoding", None) or "utf-8"


def _unstyled(text: str) -> str:
    return text


def command_console(out: OutputWrapper) -> Console:
    return Console(file=_CommandStream(out), highlight=False)  # type: ignore[arg-type]


def progress_bars(console: Console, label_width: int = 12) -> Progress:
    """Bars labelled by their description, with done/total, a detail field and the time."""
    return Progress(
        TextColumn(f"{{task.description:<{label_width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )
