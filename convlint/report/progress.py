"""The progress line of a long run: on a terminal only, on stderr, gone when the run ends."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator, Optional

DELAY = 1.0  # seconds before the line shows: a run of a few models never draws it


@contextlib.contextmanager
def progress_line(enabled: bool) -> Iterator[Optional[Callable[[str], None]]]:
    """A ``progress(model)`` callback for ``engine.check_paths`` that draws one line on
    stderr (tqdm): models analysed and the last one's name (models are built as the run
    goes: how many there are is not known before its end). None when not ``enabled`` (stderr is no terminal, the report is JSON or SARIF)."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    try:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        width = 0
    # a terminal that reports no size (a bare pty) is taken as 80x24: tqdm would draw nothing
    sized = dict(dynamic_ncols=True) if width else dict(ncols=80, nrows=24)
    bar = tqdm(desc="convlint", unit=" models", delay=DELAY, leave=False, file=sys.stderr, **sized)

    def advance(model: str) -> None:
        bar.set_postfix_str(model, refresh=False)
        bar.update()

    try:
        yield advance
    finally:
        bar.close()
