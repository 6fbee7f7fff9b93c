"""``manage.py import_occupancy PATH``: load a car-park occupancy CSV into the hourly history."""

from __future__ import annotations

import json
import time
import zoneinfo
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.core.files import file_sha256
from backend.core.money import is_known_currency
from pricing.forecasting import DataQualityReport, read_occupancy_csv
from pricing.services import ImportSummary, NewCarParkDefaults, occupancy_import


def _lat_lng(text: str) -> tuple[float, float]:
    try:
        lat_text, lng_text = text.split(",")
        lat, lng = float(lat_text), float(lng_text)
    except ValueError as exc:
        raise CommandError(f"--near must be LAT,LNG (e.g. 52.4797,-1.9026), got {text!r}") from exc
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise CommandError(f"--near is out of range: {text!r}")
    return lat, lng


class Command(BaseCommand):
    help = (
        "Import car-park occupancy readings from a CSV in the Birmingham format "
        "(SystemCodeNumber,Capacity,Occupancy,LastUpdated; local wall-clock times) into the hourly "
        "occupancy history (source 'import'). An hour's occupancy is the mean of the readings in "
        "[h, h+1) local time. Duplicate rows and negative readings are dropped, readings above "
        "capacity are clipped (or dropped), and a data-quality report is printed. CSV codes map to "
        "car parks through their external codes; --create-carparks creates missing ones. Re-running "
        "the same file replaces the same rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="CSV file to import.")
        parser.add_argument(
            "--source-name",
            help="Name of the data source the codes belong to (default: the file name without extension).",
        )
        parser.add_argument(
            "--timezone",
            default="Europe/London",
            help="IANA zone of the file's wall-clock timestamps, and of created car parks (default Europe/London).",
        )
        parser.add_argument(
            "--over-capacity",
            choices=("clip", "drop"),
            default="clip",
            help="Readings above capacity: clip them to capacity (default) or drop them.",
        )
        parser.add_argument(
            "--create-carparks",
            action="store_true",
            help="Create a car park for every code without one (needs --operator and --near).",
        )
        parser.add_argument("--operator", help="Company that owns created car parks; created if it does not exist.")
        parser.add_argument("--currency", default="GBP", help="ISO 4217 currency of created car parks (default GBP).")
        parser.add_argument(
            "--near",
            metavar="LAT,LNG",
            help="Where to place created car parks: spread deterministically within ~1.5 km of this point.",
        )
        parser.add_argument("--json", action="store_true", help="Print the report as one JSON line.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        tz = options["timezone"]
        if tz not in zoneinfo.available_timezones():
            raise CommandError(f"unknown time zone {tz!r}")
        defaults = self._defaults(options) if options["create_carparks"] else None
        source_name = options["source_name"] or path.stem
        started = time.monotonic()
        self.stderr.write(f"Reading {path} (times in {tz}, over capacity: {options['over_capacity']}) ...")
        try:
            imported = read_occupancy_csv(path, tz=tz, over_capacity=options["over_capacity"])
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        self.stderr.write(
            f"Read {imported.report.rows_read} rows, {len(imported.series)} car parks, "
            f"{imported.report.hourly_points} hours; storing ..."
        )
        summary = occupancy_import(
            imported=imported,
            source_name=source_name,
            file_name=path.name,
            file_sha256=file_sha256(path),
            create_car_parks=defaults,
            progress=self.stderr.write,
        )
        elapsed = time.monotonic() - started
        self.stderr.write(f"Done in {elapsed:.1f} s.")
        if options["json"]:
            self.stdout.write(json.dumps(self._as_dict(imported.report, summary, elapsed), sort_keys=False))
        else:
            self._print_report(imported.report, summary)

    def _defaults(self, options: dict[str, Any]) -> NewCarParkDefaults:
        if not options["operator"] or not options["near"]:
            raise CommandError("--create-carparks needs --operator NAME and --near LAT,LNG")
        currency = options["currency"].upper()
        if not is_known_currency(currency):
            raise CommandError(f"unknown currency {currency!r}")
        return NewCarParkDefaults(
            operator=options["operator"],
            timezone=options["timezone"],
            currency=currency,
            near=_lat_lng(options["near"]),
        )

    @staticmethod
    def _as_dict(report: DataQualityReport, summary: ImportSummary, elapsed: float) -> dict[str, Any]:
        return {
            "import_id": summary.import_id,
            "source_name": summary.source_name,
            "rows_written": summary.rows_written,
            "car_parks_created": summary.car_parks_created,
            "car_parks_mapped": summary.mapped,
            "skipped_codes": summary.skipped,
            "notes": summary.notes,
            "report": report.to_dict(),
            "seconds": round(elapsed, 2),
        }

    def _print_report(self, report: DataQualityReport, summary: ImportSummary) -> None:
        out = self.stdout.write
        out(f"Data-quality report ({summary.source_name}):")
        out(f"  rows read            {report.rows_read:>8}")
        out(f"  rows kept            {report.rows_kept:>8}")
        out(f"  dropped, duplicate   {report.duplicates:>8}   (exact repeats of an earlier row)")
        out(f"  dropped, negative    {report.negative:>8}")
        if report.over_capacity_policy == "drop":
            out(f"  dropped, > capacity  {report.dropped.get('above_capacity', 0):>8}")
        else:
            out(f"  clipped, > capacity  {report.clipped_above_capacity:>8}   (kept, set to capacity)")
        out(f"  dropped, unparseable {report.dropped.get('unparseable', 0):>8}")
        if report.unparseable_lines:
            out(f"    first unparseable lines: {', '.join(map(str, report.unparseable_lines))}")
        if report.conflicting_timestamps:
            out(f"  same time, different value: {report.conflicting_timestamps} (averaged)")
        out(f"  above capacity       {report.above_capacity:>8}")
        out(f"  car parks            {report.car_parks:>8}")
        out(f"  hourly points        {report.hourly_points:>8}")
        if report.first_reading and report.last_reading:
            out(f"  period               {report.first_reading:%Y-%m-%d %H:%M} .. {report.last_reading:%Y-%m-%d %H:%M}")
        missing = ", ".join(d.isoformat() for d in report.days_missing_for_all) or "none"
        out(f"  days missing for all car parks: {missing}")
        gaps = {code: days for code, days in report.gaps_by_car_park.items() if days}
        if gaps:
            out("  days missing per car park (inside its own first..last day):")
            for code, days in gaps.items():
                out(f"    {code:<20} {len(days):>3} days")
        out(
            f"Stored {summary.rows_written} hourly rows for {len(summary.mapped)} car parks "
            f"({len(summary.car_parks_created)} created)."
        )
        for code, reason in summary.skipped.items():
            out(f"  skipped {code}: {reason}")
        for note in summary.notes:
            out(f"  note: {note}")
