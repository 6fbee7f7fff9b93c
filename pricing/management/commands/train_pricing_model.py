"""``manage.py train_pricing_model``: train, evaluate and maybe promote a demand model version."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pricing.models import DemandModelStatus
from pricing.training import demand_model_train


class Command(BaseCommand):
    help = (
        "Train the occupancy (demand) model on all occupancy history, evaluate it against the "
        "seasonal-naive baseline (same hour last week) on the last --holdout-weeks weeks, and record "
        "a new model version. It is promoted to serve forecasts only if it beats the baseline "
        "(MAE ratio < 1); otherwise it is rejected, and if training fails the error is recorded. In "
        "both cases the active model keeps serving. Exits with an error status if training failed. "
        "The nightly Celery task pricing.tasks.train_demand_model does the same."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--holdout-weeks", type=int, default=2, help="Weeks at the end used for evaluation (default 2)."
        )
        parser.add_argument("--seed", type=int, default=0, help="Random seed of the model (default 0).")
        parser.add_argument("--json", action="store_true", help="Print the recorded version as one JSON line.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["holdout_weeks"] < 1:
            raise CommandError("--holdout-weeks must be at least 1")
        started = time.monotonic()
        row = demand_model_train(
            holdout_weeks=options["holdout_weeks"], seed=options["seed"], progress=self.stderr.write
        )
        self.stderr.write(f"Finished in {time.monotonic() - started:.1f} s.")
        summary = {
            "version": row.version,
            "status": row.status,
            "is_active": row.is_active,
            "mae": row.metrics.get("mae"),
            "baseline_mae": row.metrics.get("baseline_mae"),
            "ratio": row.metrics.get("ratio"),
            "hours_scored": row.metrics.get("hours_scored"),
            "train_start": None if row.train_start is None else row.train_start.isoformat(),
            "train_end": None if row.train_end is None else row.train_end.isoformat(),
            "artefact": row.artefact_path or None,
            "error": row.error or None,
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            for key, value in summary.items():
                self.stdout.write(f"{key:<13} {value}")
        if row.status == DemandModelStatus.FAILED:
            raise CommandError(f"training failed: {row.error}")
