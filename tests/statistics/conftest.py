"""The coverage and null-calibration simulations: thousands of replicates each, so `make test` runs
them and `make test-fast` (the inner loop) leaves them out."""
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)
