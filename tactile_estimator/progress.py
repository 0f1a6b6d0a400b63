"""Progress bars with an ETA on long loops, on stderr, and only where someone is watching.

``progress(items, "what")`` yields the items unchanged. A bar (tqdm) is drawn only when stderr is a
terminal and ``--quiet`` was not given (:func:`set_quiet`); otherwise nothing is written at all, so
logs, pipes, CI and the ROS nodes see no bar and tqdm is never imported. Lines printed while a bar
is drawn go through :func:`say`, which clears the bar, prints the line and draws the bar again;
log records are routed the same way while a bar is shown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

_quiet = False
_active = 0  # bars now drawn (loops may nest: bags, then epochs)


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no bar anywhere in this process."""
    global _quiet
    _quiet = bool(quiet)


def enabled(stream: TextIO | None = None) -> bool:
    """Whether a bar would be drawn on ``stream`` (stderr): not quiet, a terminal, not TERM=dumb."""
    stream = sys.stderr if stream is None else stream
    if _quiet or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """``items``, with a bar named ``desc`` counting ``unit`` (``total``: len(items) when it has one)."""
    if not enabled():
        yield from items
        return
    try:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm
    except ImportError:  # a ROS install without tqdm: the loop runs, without a bar
        yield from items
        return
    global _active
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
               position=_active)
    _active += 1
    try:
        with logging_redirect_tqdm(tqdm_class=tqdm):
            yield from bar
    finally:
        _active -= 1
        bar.close()


def say(text: str) -> None:
    """Print a line on stdout without breaking a bar being drawn."""
    if _active:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stdout)
        sys.stdout.flush()
    else:
        print(text, flush=True)
