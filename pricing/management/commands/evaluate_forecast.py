"""``manage.py evaluate_forecast``: score the occupancy model against the seasonal-naive baseline."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pricing.forecasting import (
    CarParkSeries,
    DataQualityReport,
    EvaluationResult,
    ImportResult,
    evaluate_forecast,
    plot_forecasts,
)
from pricing.management.history_options import add_history_arguments, csv_history, database_history
from pricing.models import OccupancyImport, OccupancySource

PLOTTED_CAR_PARKS = 4


def report_from_dict(data: dict[str, Any]) -> DataQualityReport:
    """Rebuild a stored :meth:`DataQualityReport.to_dict` (as kept on :class:`OccupancyImport`)."""

    def moment(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text)

    gaps = data.get("gaps", {})
    return DataQualityReport(
        rows_read=data["rows_read"],
        rows_kept=data["rows_kept"],
        dropped=dict(data["dropped"]),
        over_capacity_policy=data["over_capacity_policy"],
        above_capacity=data["above_capacity"],
        clipped_above_capacity=data["clipped_above_capacity"],
        negative=data["negative"],
        duplicates=data["duplicates"],
        conflicting_timestamps=data.get("conflicting_timestamps", 0),
        car_parks=data["car_parks"],
        hourly_points=data["hourly_points"],
        first_reading=moment(data.get("first_reading")),
        last_reading=moment(data.get("last_reading")),
        gaps_by_car_park={
            code: tuple(date.fromisoformat(d) for d in days) for code, days in gaps.get("by_car_park", {}).items()
        },
        days_missing_for_all=tuple(date.fromisoformat(d) for d in gaps.get("missing_for_all_car_parks", [])),
        unparseable_lines=tuple(data.get("unparseable_lines", [])),
    )


def gaps_of(series: Sequence[CarParkSeries]) -> dict[str, Any]:
    """Local dates without data inside each car park's own span, and dates missing for all."""
    by_code: dict[str, list[str]] = {}
    all_days: set[date] = set()
    for s in series:
        days = s.dates()
        all_days.update(days.tolist())
        span = np.arange(days.min(), days.max() + np.timedelta64(1, "D"))
        by_code[s.code] = [str(d) for d in np.setdiff1d(span, days)]
    missing_all: list[str] = []
    if all_days:
        first, last = min(all_days), max(all_days)
        missing_all = [
            (first + timedelta(days=i)).isoformat()
            for i in range((last - first).days + 1)
            if first + timedelta(days=i) not in all_days
        ]
    return {"by_car_park": by_code, "missing_for_all_car_parks": missing_all}


class Command(BaseCommand):
    help = (
        "Evaluate the day-ahead occupancy model on the last --holdout-days days of history: fit on "
        "the days before, forecast every hold-out hour from 24 h before it, and compare the MAE of "
        "the occupancy rate with the seasonal-naive baseline (same hour last week). Uses the "
        "occupancy history in the database by default, or a CSV file with --csv. Writes a PNG of "
        "forecast vs actual for a few car parks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--holdout-days", type=int, default=14, help="Days at the end held out (default 14).")
        parser.add_argument("--seed", type=int, default=0, help="Random seed of the model (default 0).")
        parser.add_argument(
            "--min-train-weeks",
            type=int,
            default=4,
            help="Car parks with fewer weeks of training days are not scored (default 4).",
        )
        add_history_arguments(parser, csv_help="Evaluate this CSV (Birmingham format) instead of the database history.")
        parser.add_argument(
            "--plot",
            type=Path,
            help="PNG to write (default: VAR_DIR/plots/forecast-<hold-out end>.png).",
        )
        parser.add_argument(
            "--plot-car-parks",
            help=f"Comma-separated codes to plot (default: the {PLOTTED_CAR_PARKS // 2} best and worst by ratio).",
        )
        parser.add_argument("--no-plot", action="store_true", help="Do not write a plot.")
        parser.add_argument("--json", action="store_true", help="Print the result as one JSON line.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["holdout_days"] < 1:
            raise CommandError("--holdout-days must be at least 1")
        started = time.monotonic()
        data, origin = self._load(options)
        self.stderr.write(f"Evaluating {len(_series(data))} car parks, hold-out {options['holdout_days']} days ...")
        try:
            result = evaluate_forecast(
                data,
                holdout_days=options["holdout_days"],
                seed=options["seed"],
                min_train_weeks=options["min_train_weeks"],
            )
        except ValueError as exc:
            raise CommandError(f"cannot evaluate: {exc}") from exc
        self.stderr.write(f"Scored {result.hours_scored} hours in {time.monotonic() - started:.1f} s.")
        plot_path = None if options["no_plot"] else self._plot(result, options)
        payload = {
            **result.to_dict(),
            "history": origin,
            "data_quality": data.report.to_dict() if isinstance(data, ImportResult) else None,
            "gaps": gaps_of(_series(data)),
            "plot": None if plot_path is None else str(plot_path),
            "seconds": round(time.monotonic() - started, 1),
        }
        if options["json"]:
            self.stdout.write(json.dumps(payload))
        else:
            self._print(result, plot_path)

    def _load(self, options: dict[str, Any]) -> tuple[ImportResult | list[CarParkSeries], str]:
        """The series to evaluate and where they came from."""
        if options["csv"] is not None:
            return csv_history(options, self.stderr), f"csv:{options['csv']}"
        tz, series = database_history(options, self.stderr)
        source = None if options["source"] == "all" else options["source"]
        origin = f"database:{options['source']}"
        # With one import behind all the history, its data-quality report explains the data
        # handling exactly as the CSV path does.
        imports = list(OccupancyImport.objects.order_by("source_name", "-created_at", "-id"))
        latest = {i.source_name: i for i in reversed(imports)}
        if source in (None, OccupancySource.IMPORT) and len(latest) == 1:
            record = next(iter(latest.values()))
            if record.timezone == tz:
                return ImportResult(tuple(series), report_from_dict(record.report), tz), origin
        return series, origin

    def _plot(self, result: EvaluationResult, options: dict[str, Any]) -> Path:
        path: Path = options["plot"] or Path(settings.VAR_DIR) / "plots" / f"forecast-{result.holdout_end}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if options["plot_car_parks"]:
            codes = [c.strip() for c in options["plot_car_parks"].split(",") if c.strip()]
        else:
            ranked = sorted(
                (code for code, score in result.per_car_park.items() if score.ratio is not None),
                key=lambda code: result.per_car_park[code].ratio or 0.0,
            )
            half = PLOTTED_CAR_PARKS // 2
            codes = ranked if len(ranked) <= PLOTTED_CAR_PARKS else ranked[:half] + ranked[-half:]
        try:
            plot_forecasts(result, path, car_parks=codes)
        except ValueError as exc:
            raise CommandError(f"cannot plot: {exc}") from exc
        self.stderr.write(f"Plot of forecast vs actual ({', '.join(codes)}) written to {path}")
        return path

    def _print(self, result: EvaluationResult, plot_path: Path | None) -> None:
        out = self.stdout.write
        out(f"Hold-out {result.holdout_start} .. {result.holdout_end} (training from {result.train_start})")
        out(f"  model MAE     {result.mae:.4f}")
        out(f"  baseline MAE  {result.baseline_mae:.4f}   (same hour last week)")
        out(f"  ratio         {result.ratio:.3f}   over {result.hours_scored} hours")
        out("Per car park (ratio, hours):")
        for code, score in result.per_car_park.items():
            ratio = "n/a" if score.ratio is None else f"{score.ratio:.3f}"
            out(f"  {code:<20} {ratio:>6} {score.hours_scored:>6}")
        for code, reason in result.not_scored.items():
            out(f"  {code:<20} not scored: {reason}")
        out(f"Data handling: {result.data_handling}")
        if plot_path is not None:
            out(f"Plot: {plot_path}")


def _series(data: ImportResult | Sequence[CarParkSeries]) -> Sequence[CarParkSeries]:
    return data.series if isinstance(data, ImportResult) else data
