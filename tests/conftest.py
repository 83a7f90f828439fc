import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")


@pytest.fixture
def in_root(monkeypatch):
    """Run with the repository root as working directory (paths in findings are relative)."""
    monkeypatch.chdir(ROOT)
    return ROOT


def pytest_configure(config):
    # The CLI tests run the installed `convlint`; make sure it is this checkout's.
    sys.path.insert(0, ROOT)
