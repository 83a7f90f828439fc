import os
import sys

# The self-check runs every op on meta tensors in the tests, also those whose size the fast
# path takes from PyTorch's shape rules (convlint/sizes.py, FULL_META); set before import.
os.environ.setdefault("CONVLINT_FULL_META", "1")

import pytest  # noqa: E402

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
