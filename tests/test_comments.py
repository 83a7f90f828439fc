"""The comments convlint reads (intent, noqa, skip-file): found where the tokenizer finds
them, by the regular expression that stands in for it before Python 3.12."""

import io
import pathlib
import tokenize

import pytest
from conftest import ROOT

from convlint import comments


def _tokenized(source: bytes) -> dict[int, str]:
    return {t.start[0]: t.string for t in tokenize.tokenize(io.BytesIO(source).readline) if t.type == tokenize.COMMENT}


TRICKY = [
    'x = "# not a comment"  # convlint: same\n',
    "x = '#' + \"'#'\"  # noqa: CVL101\n",
    's = """\n# inside\n"""  # after\n',
    "s = '''a\\'''\n# still inside\n'''  # out\n",
    'r = r"\\"#"  # raw: the backslash keeps the quote\n',
    "f = f\"{d['#']}\"  # f-string holding the other quote\n",
    'b = rb"\\\\" # two backslashes\n',
    'c = "a\\\ncontinued # not a comment"  # one\n',
    'if"#"in x: pass  # keyword then string\n',
    '# it\'s a comment with a quote\nx = 1  # "quoted"\n',
    "x = (1,  # noqa\n     2)\n",
    "# -*- coding: latin-1 -*-\ns = 'caf\xe9'  # caf\xe9 convlint: same\n",
    "\ufeff# after a byte-order mark\n",
    "x = 1\r\n# windows line ends\r\ny = 2  # two\r\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_comments_are_found_where_the_tokenizer_finds_them(text):
    source = text.encode("latin-1" if "latin-1" in text else "utf-8")
    assert comments._scanned(source) == _tokenized(source)


def test_every_python_file_of_this_repository_reads_the_same_comments_as_the_tokenizer():
    files = [p for p in pathlib.Path(ROOT).rglob("*.py") if ".venv" not in p.parts and "node_modules" not in p.parts]
    assert len(files) > 100
    for path in files:
        source = path.read_bytes()
        assert comments._scanned(source) == _tokenized(source), path
