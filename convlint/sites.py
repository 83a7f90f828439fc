"""Construction sites: where in source each module was built.

While convlint builds a model it wraps ``nn.Module.__init__``; each new module
remembers the call expression that constructed it, from the frame's exact code
positions (Python 3.11+: ``co_positions``). ``copy.deepcopy`` keeps the site, since
it lives in the module's ``__dict__``.
"""

from __future__ import annotations

import contextlib
import functools
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
    if not text or text.isascii():  # one byte per character
        return byte_col + 1
    return len(text.encode("utf-8")[:byte_col].decode("utf-8", errors="replace")) + 1


@functools.lru_cache(maxsize=4096)
def _positions(code) -> tuple:
    # a builder's frame makes many calls: its code's positions are listed once, not per call
    return tuple(code.co_positions())


def frame_site(frame) -> Optional[Site]:
    """The span of the call a live frame is making."""
    try:
        positions = _positions(frame.f_code)[frame.f_lasti // 2]
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


def raised_site(exc: BaseException) -> Optional[Site]:
    """The innermost line outside torch and convlint that ``exc`` passed through: the
    model's own line that raised (an ``assert``), or its call into PyTorch that did."""
    skipped = _skipped_dirs()
    found = None
    tb = exc.__traceback__
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(skipped):
            found = tb
        tb = tb.tb_next
    if found is None:
        return None
    path, line = found.tb_frame.f_code.co_filename, found.tb_lineno
    return Site(path, line, 1, line, 1)


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


def raises_unless(site: Optional[Site]) -> bool:
    """Is the decision at ``site`` a check whose other side raises? The test of an
    ``assert`` or ``torch._assert(...)``, or of an ``if`` whose body only raises, with the
    site reached through ``not`` and through ``and`` / ``or`` chains that the example
    evaluated whole (an ``and`` that held, an ``or`` that did not): there, any other value
    of the decision flips the test, and the model raises instead of branching."""
    if site is None:
        return False
    tree = _parsed(site.path)
    if tree is None:
        return False
    import ast

    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            root, held = node.test, True
        elif isinstance(node, ast.If) and not node.orelse and all(isinstance(s, ast.Raise) for s in node.body):
            root, held = node.test, False
        elif isinstance(node, ast.Call) and node.args and _called(node) == "_assert":
            root, held = node.args[0], True
        else:
            continue
        if _spans(node, site) and not isinstance(node, ast.Call):
            # The whole statement (an int's truth is placed there): every operand counts.
            if _all_decide(root, held):
                return True
        elif root.lineno <= site.line <= (root.end_lineno or root.lineno) and _decides(root, held, site):
            return True
    return False


def _spans(node, site: Site) -> bool:
    return (node.lineno, node.col_offset + 1, node.end_lineno, node.end_col_offset + 1) == (
        site.line, site.column, site.end_line, site.end_column,
    )  # fmt: skip


def _all_decide(node, value: bool) -> bool:
    """Does flipping any one operand of ``node`` (which had ``value``) flip it?"""
    import ast

    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _all_decide(node.operand, not value)
    if isinstance(node, ast.BoolOp):
        return isinstance(node.op, ast.And) == value and all(_all_decide(v, value) for v in node.values)
    return True


def _called(call) -> str:
    import ast

    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _decides(node, value: bool, site: Site) -> bool:
    """Does flipping the expression at ``site`` flip ``node``, which had ``value``?"""
    import ast

    if _spans(node, site):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return _decides(node.operand, not value, site)
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And) == value:
        # every operand was evaluated, and each had the chain's value
        return any(_decides(operand, value, site) for operand in node.values)
    return False


@functools.lru_cache(maxsize=256)
def _parsed(path: str):
    import ast
    import linecache

    lines = linecache.getlines(path)
    try:
        return ast.parse("".join(lines)) if lines else None
    except (SyntaxError, ValueError):
        return None
