"""``manage.py seed_pricing_demo``: history, rate rules, a model and published rates for the demo."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backend.carparks.management.commands.seed_demo import DEMO_COMPANY
from pricing.demo import MIN_WEEKS, pricing_demo_seed


class Command(BaseCommand):
    help = (
        "Demo only (refused in production): give each car park of the demo company that has no "
        "imported history a plausible one (--weeks of hourly occupancy, a weekly shape by kind of car "
        "park, seeded noise) and a dynamic rate rule, train the demand model if none was ever tried, "
        "and publish the coming week's rates. Idempotent: car parks that have history or a rule keep "
        "them. Real history comes from import_occupancy instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--weeks", type=int, default=8, help=f"Weeks of history to write (default 8, at least {MIN_WEEKS})."
        )
        parser.add_argument("--seed", type=int, default=2026, help="Random seed of the history (default 2026).")
        parser.add_argument(
            "--company", default=DEMO_COMPANY, help=f"Whose car parks (default {DEMO_COMPANY!r}, the demo's)."
        )
        parser.add_argument(
            "--retrain", action="store_true", help="Train a new model even if one is active or the last one failed."
        )
        parser.add_argument("--quiet", action="store_true", help="Print only the summary.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        progress = (lambda message: None) if options["quiet"] else self.stderr.write
        try:
            summary = pricing_demo_seed(
                company=options["company"],
                weeks=options["weeks"],
                seed=options["seed"],
                retrain=options["retrain"],
                progress=progress,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Pricing demo: history for {summary.car_parks_with_new_history} car parks "
            f"({summary.hours_written} hours), {summary.rules_created} rate rules, model "
            f"v{summary.model_version} ({summary.model_status}), {summary.rates_published} rates published "
            f"in {time.monotonic() - started:.1f} s."
        )
