"""Construction sites: where in source each module was built.

While convlint builds a model it wraps ``nn.Module.__init__``; each new module
remembers the call expression that constructed it, from the frame's exact code
positions (Python 3.11+: ``co_positions``). ``copy.deepcopy`` keeps the site, since
it lives in the module's ``__dict__``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Iterator, Optional

ATTR = "_convlint_site"
CHAIN = "_convlint_calls"  # the user calls that led to a module (``Call``s), innermost first
NODE_META = "convlint_site"  # the key of a graph node's site in node.meta (captures write it)


@dataclass(frozen=True)
class Site:
    """A span in a source file; line and column are 1-based, columns count characters."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int


def _char_column(path: str, line: int, byte_col: int) -> int:
    """co_positions columns are UTF-8 byte offsets; report characters, 1-based."""
    import linecache

    text = linecache.getline(path, line)
    if not text:
        return byte_col + 1
    return len(text.encode("utf-8")[:byte_col].decode("utf-8", errors="replace")) + 1


def frame_site(frame) -> Optional[Site]:
    """The span of the call a live frame is making."""
    try:
        positions = list(frame.f_code.co_positions())[frame.f_lasti // 2]
    except (IndexError, AttributeError):
        return None
    line, end_line, col, end_col = positions
    if line is None or col is None:
        return Site(frame.f_code.co_filename, frame.f_lineno, 1, frame.f_lineno, 1)
    path = frame.f_code.co_filename
    return Site(
        path,
        line,
        _char_column(path, line, col),
        end_line or line,
        _char_column(path, end_line or line, end_col or col),
    )


def _skipped_dirs() -> tuple[str, ...]:
    import torch

    here = os.path.dirname(os.path.abspath(__file__))
    return (os.path.dirname(os.path.abspath(torch.__file__)) + os.sep, here + os.sep)


def user_site(skipped: tuple[str, ...]) -> Optional[Site]:
    """The call being made by the innermost frame outside torch and convlint (the user's
    line that led here)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(skipped):
        frame = frame.f_back
    return frame_site(frame) if frame is not None else None


@dataclass(frozen=True)
class Call:
    """One user call on the way to a module: where it is, and the parameters of the
    function making it (a helper's ``__init__(self, ..., padding, dilation)``), so that a
    value a helper only forwards can be followed to the call that wrote it."""

    site: Site
    function: str  # the name of the function making the call ("__init__", "conv3x3")
    params: tuple[str, ...]


CHAIN_DEPTH = 4  # calls recorded per module: the layer's, and three helpers' callers


def _caller_chain(module, skipped: tuple[str, ...]) -> tuple[Call, ...]:
    """The user's calls that led to ``module``, innermost first. Walks out of the module's
    own __init__ chain (every frame whose `self` is the module) and out of torch itself."""
    chain = []
    frame = sys._getframe(2)
    while frame is not None and len(chain) < CHAIN_DEPTH:
        code = frame.f_code
        if frame.f_locals.get("self") is not module and not code.co_filename.startswith(skipped):
            if not code.co_filename.startswith("<"):
                site = frame_site(frame)
                if site is None:
                    break
                chain.append(Call(site, code.co_name, code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]))
        frame = frame.f_back
    return tuple(chain)


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Record the construction site of every module built inside the block."""
    import torch.nn as nn

    original = nn.Module.__init__
    skipped = _skipped_dirs()

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if ATTR not in self.__dict__:
            chain = _caller_chain(self, skipped)
            self.__dict__[ATTR] = chain[0].site if chain else None
            self.__dict__[CHAIN] = chain

    nn.Module.__init__ = __init__
    try:
        yield
    finally:
        nn.Module.__init__ = original


def source_text(site: Site, limit: int = 60) -> Optional[str]:
    """The source a site spans, on one line (``out + residual``), shortened with "…"."""
    import linecache

    first = linecache.getline(site.path, site.line)
    if not first:
        return None
    if site.end_line == site.line and site.end_column > site.column:
        text = first[site.column - 1 : site.end_column - 1]
    else:
        text = first[site.column - 1 :].rstrip() + " …"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def site_of(module) -> Optional[Site]:
    return module.__dict__.get(ATTR)


def calls_of(module) -> tuple[Call, ...]:
    return module.__dict__.get(CHAIN, ())
