"""The comments convlint reads in source files, found by the tokenizer (so a ``#``
inside a string is not one):

- ``# convlint: same``: same intent (``intent``);
- ``# noqa``, ``# noqa: CVL101,CVL102``, ``# convlint: ignore`` and
  ``# convlint: ignore[CVL101]``: suppress findings on that line (``suppressed``);
- ``# convlint: skip-file``: skip the whole file.
"""

from __future__ import annotations

import functools
import io
import os
import re
import sys
import tokenize
from typing import Optional

SAME = re.compile(r"\bconvlint:\s*same\b")
SKIP_FILE = re.compile(r"\bconvlint:\s*skip-file\b")
# flake8's form: a bare noqa marker, or noqa, a colon and codes separated by commas or spaces
NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]{1,3}[0-9]{1,3}(?:[,\s]+[A-Z]{1,3}[0-9]{1,3})*))?", re.IGNORECASE)
IGNORE = re.compile(r"\bconvlint:\s*ignore(?:\[(?P<codes>[^\]]*)\])?")

ALL = frozenset({"*"})


def _key(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (os.path.abspath(path), None, None)
    return (os.path.abspath(path), st.st_mtime_ns, st.st_size)


def comments(path: str) -> dict[int, str]:
    """{line: comment text} for ``path`` as it is on disk now (none where the file holds
    neither ``convlint`` nor ``noqa``: every comment convlint reads has one of them)."""
    return _comments(_key(path))


@functools.lru_cache(maxsize=1024)
def _comments(key: tuple) -> dict[int, str]:
    try:
        with open(key[0], "rb") as fh:
            source = fh.read()
    except OSError:
        return {}
    lowered = source.lower()
    if b"convlint" not in lowered and b"noqa" not in lowered:
        return {}  # no comment of ours can be in it: not tokenized (10 ms for 500 lines)
    if sys.version_info < (3, 12):
        return _scanned(source)
    found = {}
    try:
        for token in tokenize.tokenize(io.BytesIO(source).readline):
            if token.type == tokenize.COMMENT:
                found[token.start[0]] = token.string
    except (tokenize.TokenError, SyntaxError):
        pass  # a file that does not tokenize is reported by its import
    return found


# Before Python 3.12, tokenize is pure Python (5 ms for a 500-line model file, the first
# check's largest cost of our own after the imports). There, strings and comments are
# read by one regular expression instead: exact for that grammar, where an f-string cannot
# hold its own quote (3.12 can, and tokenizes in C: the tokenizer is used there).
_STRING_OR_COMMENT = re.compile(
    r"""
    (?P<comment>\#[^\r\n]*)
    | [rRbBuUfF]{0,2}(?:
        \"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"
      | '''(?:\\[\s\S]|[^\\])*?'''
      | "(?:\\[\s\S]|[^"\\\r\n])*"
      | '(?:\\[\s\S]|[^'\\\r\n])*'
    )
    """,
    re.VERBOSE,
)


def _scanned(source: bytes) -> dict[int, str]:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
        text = source.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return {}  # as tokenize: a file that does not decode is reported by its import
    found = {}
    line, counted = 1, 0
    for match in _STRING_OR_COMMENT.finditer(text):
        if match.lastgroup == "comment":
            line += text.count("\n", counted, match.start())
            counted = match.start()
            found[line] = match.group()
    return found


def same_lines(path: str) -> frozenset[int]:
    return frozenset(line for line, text in comments(path).items() if SAME.search(text))


def skip_file(path: str) -> bool:
    return any(SKIP_FILE.search(text) for text in comments(path).values())


def _codes(text: Optional[str]) -> frozenset[str]:
    if text is None or not text.strip():
        return ALL
    return frozenset(c.upper() for c in re.split(r"[,\s]+", text.strip()) if c)


def suppressions(path: str) -> dict[int, frozenset[str]]:
    """{line: codes suppressed there}, ``ALL`` for a bare ``# noqa`` or ``# convlint: ignore``."""
    found: dict[int, frozenset[str]] = {}
    for line, text in comments(path).items():
        for pattern in (NOQA, IGNORE):
            match = pattern.search(text)
            if match:
                found[line] = found.get(line, frozenset()) | _codes(match.group("codes"))
    return found


def suppressed(code: str, path: str, first_line: int, last_line: int) -> bool:
    """Is ``code`` suppressed on any line of the span (a constructor call may span several)?"""
    marks = suppressions(path)
    for line in range(first_line, last_line + 1):
        codes = marks.get(line)
        if codes and ("*" in codes or any(code.startswith(c) for c in codes)):
            return True
    return False
