"""Hold-out evaluation of the occupancy model against a seasonal-naive baseline.

Protocol (:func:`evaluate_forecast`):

1. The hold-out is the last ``holdout_days`` calendar days of the data set (local dates, up to the
   latest date of any car park). The model is fitted on the hours before it only.
2. Every hold-out hour ``t`` is forecast from a rolling origin ``t - 24 h``: the model and the
   baseline may read actual values that start at or before ``t - 24 h`` (including hold-out values
   that old), never newer ones.
3. Baseline = seasonal naive: the same local hour one week before; where that is missing, the most
   recent same weekday and hour before it.
4. Model and baseline are scored (MAE of the occupancy rate) over exactly the same hours: hold-out
   hours with an actual value and a baseline value (and, always the case in practice, a model
   value). Car parks with fewer than ``min_train_weeks`` weeks of training days are listed under
   ``not_scored`` and excluded from the totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .csv_reader import ImportResult
from .features import build_panel, seasonal_naive
from .model import ModelConfig, OccupancyForecaster
from .series import CarParkSeries

__all__ = ["CarParkScore", "EvaluationResult", "NotEnoughHistory", "evaluate_forecast", "plot_forecasts"]


class NotEnoughHistory(ValueError):
    """The data set is too short to evaluate: no car park has enough training days before the hold-out.

    ``days`` is the number of calendar days the data spans, ``needed`` the days the protocol needs
    (hold-out days + ``min_train_weeks`` weeks); ``str()`` reads
    ``"not enough history: 10 days, need 42"``.
    """

    def __init__(self, *, days: int, needed: int, detail: str = "") -> None:
        self.days = days
        self.needed = needed
        super().__init__(f"not enough history: {days} days, need {needed}{detail}")


@dataclass(frozen=True)
class CarParkScore:
    """Scores of one car park over its scored hold-out hours."""

    mae: float
    baseline_mae: float
    ratio: float | None  # None when the baseline is perfect (MAE 0) and the ratio is undefined
    hours_scored: int
    train_days: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "mae": self.mae,
            "baseline_mae": self.baseline_mae,
            "ratio": self.ratio,
            "hours_scored": self.hours_scored,
            "train_days": self.train_days,
        }


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Outcome of :func:`evaluate_forecast`. ``to_dict()`` is JSON-able.

    ``forecasts`` keeps, per scored car park, the hold-out hours (local ``datetime64[h]``), actual
    rates, model and baseline forecasts (for :func:`plot_forecasts`); it is left out of
    ``to_dict()``.
    """

    mae: float
    baseline_mae: float
    ratio: float
    hours_scored: int
    per_car_park: dict[str, CarParkScore]
    not_scored: dict[str, str]
    holdout_start: str
    holdout_end: str
    train_start: str
    data_handling: str
    seed: int
    feature_names: tuple[str, ...]
    forecasts: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mae": self.mae,
            "baseline_mae": self.baseline_mae,
            "ratio": self.ratio,
            "hours_scored": self.hours_scored,
            "per_car_park": {k: v.to_dict() for k, v in self.per_car_park.items()},
            "not_scored": dict(self.not_scored),
            "holdout": {"start": self.holdout_start, "end": self.holdout_end},
            "train_start": self.train_start,
            "data_handling": self.data_handling,
            "seed": self.seed,
            "features": list(self.feature_names),
        }


_GENERIC_HANDLING = (
    "Hourly rates are means of the readings in each local hour. Missing hours (e.g. nights, outside "
    "the car park's reporting window) and whole missing days stay missing: they are neither trained "
    "on nor scored. Lags that fall on them are NaN (the boosted trees route NaN; the linear member "
    "reads a missing difference as 0) and profiles average only the weeks present. The model's "
    "anchor falls back from the same hour last week to the most recent same weekday and hour "
    "(8 weeks), then the same hour yesterday, then the car park's hourly mean; the baseline falls "
    "back to the most recent same weekday and hour. Hours are local wall-clock time; the 24 h "
    "information cut-off is applied in UTC, so it holds across DST changes."
)


def _data_handling(source: ImportResult | Sequence[CarParkSeries]) -> str:
    if not isinstance(source, ImportResult):
        return _GENERIC_HANDLING
    r = source.report
    if r.over_capacity_policy == "clip":
        over = f"{r.above_capacity} readings above capacity were clipped to capacity"
    else:
        over = f"{r.above_capacity} readings above capacity were dropped"
    missing = ", ".join(d.isoformat() for d in r.days_missing_for_all) or "none"
    return (
        f"Import: {r.rows_read} rows read, {r.rows_kept} kept. {r.duplicates} exact duplicate rows "
        f"(extra copies) dropped; {r.negative} negative readings dropped; {over}; "
        f"{r.dropped.get('unparseable', 0)} unparseable rows dropped. Days missing for every car "
        f"park: {missing}. " + _GENERIC_HANDLING
    )


def evaluate_forecast(
    series: ImportResult | Sequence[CarParkSeries],
    *,
    holdout_days: int = 14,
    seed: int = 0,
    min_train_weeks: int = 4,
    config: ModelConfig | None = None,
    country: str | None = "GB",
    subdiv: str | None = "ENG",
) -> EvaluationResult:
    """Fit on all days before the last ``holdout_days`` days, forecast the hold-out day-ahead.

    See the module docstring for the exact protocol. ``series`` is an :class:`ImportResult` (its
    quality report feeds ``data_handling``) or a sequence of :class:`CarParkSeries` in one zone.
    A car park's training days are the local dates before the hold-out with at least one hour of
    data; with fewer than ``7 * min_train_weeks`` it goes to ``not_scored``. ``config``,
    ``country`` and ``subdiv`` are passed to :class:`OccupancyForecaster`.
    Raises :class:`NotEnoughHistory` (a ValueError), before fitting anything, if no car park has
    ``7 * min_train_weeks`` training days (e.g. the hold-out covers all days), and ValueError if
    no car park can be scored for another reason (no hold-out hour with a baseline value).
    """
    items = list(series.series if isinstance(series, ImportResult) else series)
    items = [s for s in items if len(s.local_hour)]
    if not items:
        raise ValueError("no data")
    tz = items[0].tz
    panel = build_panel(items, tz=tz)
    last_day = panel.start_day + panel.n_days - 1
    holdout_start = last_day - holdout_days + 1
    split = int((holdout_start - panel.start_day).astype(np.int64))
    has_data = ~np.isnan(panel.rate)
    train_days = has_data[:, : max(split, 0)].any(axis=2).sum(axis=1)
    needed_days = 7 * min_train_weeks
    if split <= 0 or train_days.max() < needed_days:
        # Checked before fitting: no car park could be scored, so a model would be trained for nothing.
        if split <= 0:
            detail = " (the hold-out covers the whole data set)"
        else:
            detail = f" (no car park has {needed_days} training days; the most is {int(train_days.max())})"
        raise NotEnoughHistory(days=panel.n_days, needed=holdout_days + needed_days, detail=detail)

    model = OccupancyForecaster(tz=tz, country=country, subdiv=subdiv, seed=seed, config=config)
    model.fit(items, end=holdout_start.astype(datetime))

    baseline_all = seasonal_naive(panel.rate, panel.n_days // 7 + 1)
    c, d, h = np.nonzero(has_data[:, split:] & ~np.isnan(baseline_all[:, split:]))
    d = d + split
    pred = model.predict_cells(panel, c, d, h)
    actual = panel.rate[c, d, h]
    baseline = baseline_all[c, d, h]

    per: dict[str, CarParkScore] = {}
    not_scored: dict[str, str] = {}
    keep_rows = np.zeros(len(c), dtype=bool)
    forecasts: dict[str, dict[str, np.ndarray]] = {}
    hours_local = (panel.start_day + d).astype("datetime64[h]") + h
    for ci, code in enumerate(panel.codes):
        rows = (c == ci) & ~np.isnan(pred)
        if train_days[ci] < 7 * min_train_weeks:
            not_scored[code] = f"only {int(train_days[ci])} training days (< {min_train_weeks} weeks)"
            continue
        if not rows.any():
            has_holdout = has_data[ci, split:].any()
            not_scored[code] = (
                "no hold-out hour with an actual and a baseline value" if has_holdout else "no hold-out data"
            )
            continue
        keep_rows |= rows
        mae = float(np.mean(np.abs(pred[rows] - actual[rows])))
        base_mae = float(np.mean(np.abs(baseline[rows] - actual[rows])))
        per[code] = CarParkScore(
            mae=mae,
            baseline_mae=base_mae,
            ratio=mae / base_mae if base_mae > 0 else None,
            hours_scored=int(rows.sum()),
            train_days=int(train_days[ci]),
        )
        forecasts[code] = {
            "local_hour": hours_local[rows],
            "actual": actual[rows],
            "forecast": pred[rows],
            "baseline": baseline[rows],
        }
    if not keep_rows.any():
        raise ValueError("no car park could be scored")
    mae = float(np.mean(np.abs(pred[keep_rows] - actual[keep_rows])))
    base_mae = float(np.mean(np.abs(baseline[keep_rows] - actual[keep_rows])))
    return EvaluationResult(
        mae=mae,
        baseline_mae=base_mae,
        ratio=mae / base_mae,
        hours_scored=int(keep_rows.sum()),
        per_car_park=per,
        not_scored=not_scored,
        holdout_start=str(holdout_start),
        holdout_end=str(last_day),
        train_start=str(panel.start_day),
        data_handling=_data_handling(series),
        seed=seed,
        feature_names=model.feature_names,
        forecasts=forecasts,
    )


def plot_forecasts(
    result: EvaluationResult,
    path: str | Path,
    car_parks: Sequence[str] | None = None,
) -> Path:
    """Write a PNG of hold-out forecast, baseline and actual rates for a few car parks.

    ``car_parks`` defaults to the first four scored ones. Hours are plotted on a compressed axis
    (one point per scored hour) because nights and missing days carry no data. Returns the path.
    """
    # Imported lazily: plotting is optional and matplotlib is slow to import. The Agg canvas is
    # used directly (no pyplot) so the process-wide backend and pyplot's global state are untouched,
    # which keeps this safe inside a web or worker process.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    codes = list(car_parks) if car_parks is not None else list(result.forecasts)[:4]
    codes = [c for c in codes if c in result.forecasts]
    if not codes:
        raise ValueError("none of the requested car parks was scored")
    fig = Figure(figsize=(12, 2.6 * len(codes)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(codes), 1, squeeze=False)
    for ax, code in zip(axes[:, 0], codes, strict=True):
        f = result.forecasts[code]
        x = np.arange(len(f["actual"]))
        ax.plot(x, f["actual"], color="black", lw=1.2, label="actual")
        ax.plot(x, f["forecast"], color="tab:blue", lw=1.0, label="model (origin t-24h)")
        ax.plot(x, f["baseline"], color="tab:orange", lw=0.8, ls="--", label="same hour last week")
        score = result.per_car_park[code]
        ax.set_title(
            f"{code}: MAE {score.mae:.3f} vs baseline {score.baseline_mae:.3f} (ratio {score.ratio:.2f})", fontsize=9
        )
        ax.set_ylabel("occupancy rate")
        days = f["local_hour"].astype("datetime64[D]")
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        ax.set_xticks(starts)
        ax.set_xticklabels([str(days[i])[5:] for i in starts], fontsize=7)
        ax.set_ylim(0, 1.05)
    axes[0, 0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    return out
