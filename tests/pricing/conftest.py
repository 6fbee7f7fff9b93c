"""Fixtures shared by the pricing tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from threadpoolctl import threadpool_limits

from pricing.forecast_service import clear_model_cache


@pytest.fixture
def model_sandbox(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> Iterator[None]:
    """Model artefacts in a temporary VAR_DIR, no cached model, one BLAS thread, and the clock
    stopped at the test module's ``NOW``."""
    settings.VAR_DIR = tmp_path
    clear_model_cache()
    # scikit-learn's OpenMP threads fight over the cores when test workers run in parallel.
    with threadpool_limits(limits=1), time_machine.travel(request.module.NOW, tick=False):
        yield
    clear_model_cache()
