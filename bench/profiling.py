"""Where the time goes: pyinstrument when installed (see bench/README.md), else cProfile."""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Callable
from pathlib import Path
from typing import Any


def profile(function: Callable[[], Any], path: Path) -> Path:
    """Run `function` once under the profiler and write the report as text to `path`."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return _cprofile(function, path)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        function()
    finally:
        profiler.stop()
    path.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    return path


def _cprofile(function: Callable[[], Any], path: Path) -> Path:
    profiler = cProfile.Profile()
    profiler.runcall(function)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
    path.write_text(text.getvalue())
    return path
