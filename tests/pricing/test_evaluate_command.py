"""evaluate_forecast command: database history (real Birmingham import) and CSV input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from threadpoolctl import threadpool_limits

from tests.pricing.occupancy_data import synthetic_rates
from tests.pricing.test_occupancy_import import BIRMINGHAM, CREATE


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # scikit-learn's OpenMP threads fight over the cores when test workers run in parallel.
    with threadpool_limits(limits=1):
        yield


def _evaluate(*args: str) -> tuple[dict, str]:
    out, err = StringIO(), StringIO()
    call_command("evaluate_forecast", "--json", *args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


@pytest.mark.django_db
def test_evaluate_imported_birmingham_history_beats_baseline(tmp_path: Path) -> None:
    call_command("import_occupancy", str(BIRMINGHAM), *CREATE, stdout=StringIO(), stderr=StringIO())
    plot = tmp_path / "forecast.png"

    result, progress = _evaluate("--holdout-days", "14", "--seed", "0", "--plot", str(plot))

    assert result["history"] == "database:all"
    assert result["ratio"] <= 0.90
    assert result["ratio"] == pytest.approx(result["mae"] / result["baseline_mae"])
    assert result["mae"] < result["baseline_mae"]
    assert result["hours_scored"] == 3555  # the CSV path scores the same hours (see forecasting README)
    assert len(result["per_car_park"]) == 28
    assert set(result["not_scored"]) == {"BHMBRTARC01", "NIA North"}
    assert result["holdout"] == {"start": "2016-12-06", "end": "2016-12-19"}
    handling = result["data_handling"]
    assert "373 readings above capacity were clipped" in handling
    assert "216 exact duplicate rows" in handling
    assert "2016-10-20, 2016-10-21, 2016-12-03, 2016-12-04" in handling
    assert result["data_quality"]["negative"] == 12
    assert result["gaps"]["missing_for_all_car_parks"] == ["2016-10-20", "2016-10-21", "2016-12-03", "2016-12-04"]
    assert result["plot"] == str(plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "written to" in progress


@pytest.mark.django_db
def test_evaluate_reads_a_csv_when_given(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.csv"
    lines = ["SystemCodeNumber,Capacity,Occupancy,LastUpdated"]
    for code, capacity, seed in (("A", 200, 0), ("B", 300, 1)):
        for day, hour, rate in synthetic_rates(49, seed=seed, start=date(2026, 1, 5)):
            lines.append(f"{code},{capacity},{round(rate * capacity)},{day.isoformat()} {hour:02d}:20:00")
    path.write_text("\n".join(lines) + "\n")

    result, _ = _evaluate("--csv", str(path), "--no-plot")

    assert result["history"] == f"csv:{path}"
    assert set(result["per_car_park"]) == {"A", "B"}
    assert result["hours_scored"] == 2 * 14 * 12
    assert result["data_quality"]["rows_read"] == 2 * 49 * 12
    assert result["plot"] is None


@pytest.mark.django_db
def test_evaluate_without_history_says_so() -> None:
    with pytest.raises(CommandError, match="no occupancy history"):
        call_command("evaluate_forecast", stdout=StringIO(), stderr=StringIO())
