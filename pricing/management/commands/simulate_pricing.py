"""``manage.py simulate_pricing``: replay occupancy history and compare pricing policies."""

from __future__ import annotations

import json
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from threadpoolctl import threadpool_limits

from pricing.forecasting import CarParkSeries
from pricing.management.history_options import add_history_arguments, csv_history, database_history
from pricing.policy import RateBounds, TargetBand
from pricing.simulation import POLICY_NAMES, SimulationConfig, SimulationResult, plot_simulation, simulate_pricing


def _money(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise CommandError(f"not an amount: {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Simulate pricing policies on the last --weeks weeks of occupancy history: recorded occupancy "
        "is demand at the base rate, and price moves it through a hidden elasticity per car park. "
        "Compares static pricing (base rate, best flat price in hindsight), an SFpark-style reactive "
        "rule and our forecast-driven policy in band and revenue mode, all scored on the same band and "
        "bounds. Uses the occupancy history in the database by default, or a CSV file with --csv."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = SimulationConfig()
        parser.add_argument("--weeks", type=int, default=defaults.weeks, help="Weeks simulated at the end (default 4).")
        parser.add_argument("--seed", type=int, default=defaults.seed, help="Seed of e_true and the model (default 0).")
        add_history_arguments(parser, csv_help="Simulate this CSV (Birmingham format) instead of the database.")
        parser.add_argument("--base-rate", default=str(defaults.base_rate), help="Base (historic) rate per hour.")
        parser.add_argument("--minimum", default=str(defaults.bounds.minimum), help="Lowest rate allowed.")
        parser.add_argument("--maximum", default=str(defaults.bounds.maximum), help="Highest rate allowed.")
        parser.add_argument(
            "--max-daily-change",
            default=str(defaults.bounds.max_daily_change),
            help="Largest change vs the same local hour the day before ('none': no limit).",
        )
        parser.add_argument("--step", default=str(defaults.bounds.step), help="Price step (grid) of rates.")
        parser.add_argument("--band-low", type=float, default=defaults.band.low, help="Target band, low edge.")
        parser.add_argument("--band-high", type=float, default=defaults.band.high, help="Target band, high edge.")
        parser.add_argument("--plot-dir", type=Path, help="Directory for the PNGs (default: VAR_DIR/plots/).")
        parser.add_argument("--plot-car-park", help="Car park of the one-week plot (default: the busiest).")
        parser.add_argument("--no-plot", action="store_true", help="Do not write plots.")
        parser.add_argument(
            "--threads",
            type=int,
            default=1,
            help="Threads for the model (default 1: parallel threads fight on 2 cores).",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as one JSON line.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        config = self._config(options)
        series, origin = self._load(options)
        try:
            with threadpool_limits(limits=max(1, options["threads"])):
                result = simulate_pricing(series, config, progress=self.stderr.write)
        except ValueError as exc:
            raise CommandError(f"cannot simulate: {exc}") from exc
        plots: list[Path] = []
        if not options["no_plot"]:
            directory = options["plot_dir"] or Path(settings.VAR_DIR) / "plots"
            try:
                plots = plot_simulation(result, directory, car_park=options["plot_car_park"])
            except ValueError as exc:
                raise CommandError(f"cannot plot: {exc}") from exc
            self.stderr.write(f"Plots written: {', '.join(str(p) for p in plots)}")
        seconds = round(time.monotonic() - started, 1)
        self.stderr.write(f"Done in {seconds} s.")
        if options["json"]:
            payload = {**result.to_dict(), "history": origin, "plots": [str(p) for p in plots], "seconds": seconds}
            self.stdout.write(json.dumps(payload))
        else:
            self._print(result, plots)

    def _config(self, options: dict[str, Any]) -> SimulationConfig:
        daily = options["max_daily_change"]
        try:
            bounds = RateBounds(
                minimum=_money(options["minimum"]),
                maximum=_money(options["maximum"]),
                max_daily_change=None if daily.lower() == "none" else _money(daily),
                step=_money(options["step"]),
            )
            band = TargetBand(low=options["band_low"], high=options["band_high"])
            return SimulationConfig(
                base_rate=_money(options["base_rate"]),
                bounds=bounds,
                band=band,
                weeks=options["weeks"],
                seed=options["seed"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def _load(self, options: dict[str, Any]) -> tuple[list[CarParkSeries], str]:
        """The series to replay and where they came from."""
        if options["csv"] is not None:
            return list(csv_history(options, self.stderr).series), f"csv:{options['csv']}"
        _, series = database_history(options, self.stderr)
        return series, f"database:{options['source']}"

    def _print(self, result: SimulationResult, plots: list[Path]) -> None:
        out = self.stdout.write
        currency = result.assumptions["currency"]
        band = result.assumptions["band"]
        out(
            f"Simulated {result.period_start} .. {result.period_end}: {len(result.codes)} car parks, "
            f"{result.hours} car-park-hours; band {band['low']:.0%}-{band['high']:.0%}"
        )
        out(f"  {'policy':<18} {'in band':>8} {'revenue (' + currency + ')':>16} {'turned away':>12}")
        for name in POLICY_NAMES:
            score = result.policies[name]
            out(f"  {name:<18} {score.in_band_share:>8.1%} {score.revenue:>16,.2f} {score.turned_away:>12,.1f}")
        out("Turned away: vehicle-hours of demand above capacity.")
        out("Assumptions:")
        for key, value in result.assumptions.items():
            out(f"  {key}: {value}")
        for path in plots:
            out(f"Plot: {path}")
