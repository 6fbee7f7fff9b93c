"""Where a pricing command reads occupancy history from: a Birmingham-format CSV or the database.

Shared by ``evaluate_forecast`` and ``simulate_pricing`` so that both accept the same options and
read the history the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser, OutputWrapper

from pricing.forecasting import CarParkSeries, ImportResult, read_occupancy_csv
from pricing.history import in_one_zone, series_from_db
from pricing.models import OccupancySource


def add_history_arguments(parser: CommandParser, *, csv_help: str) -> None:
    parser.add_argument("--csv", type=Path, help=csv_help)
    parser.add_argument("--timezone", default="Europe/London", help="Zone of the CSV's wall-clock times.")
    parser.add_argument(
        "--over-capacity", choices=("clip", "drop"), default="clip", help="CSV readings above capacity."
    )
    parser.add_argument(
        "--source",
        choices=("all", *OccupancySource.values),
        default="all",
        help="Database history to use: all sources merged (default) or one source.",
    )


def csv_history(options: dict[str, Any], stderr: OutputWrapper) -> ImportResult:
    stderr.write(f"Reading {options['csv']} ...")
    try:
        return read_occupancy_csv(options["csv"], tz=options["timezone"], over_capacity=options["over_capacity"])
    except OSError as exc:
        raise CommandError(f"cannot read {options['csv']}: {exc}") from exc


def database_history(options: dict[str, Any], stderr: OutputWrapper) -> tuple[str, list[CarParkSeries]]:
    """The time zone and the series of the database history (one zone), or a CommandError."""
    stderr.write("Loading occupancy history from the database ...")
    source = None if options["source"] == "all" else options["source"]
    series = list(series_from_db(source=source))
    if not series:
        raise CommandError("no occupancy history in the database (import some with import_occupancy)")
    return in_one_zone(series)
