"""Pricing policy simulation: replay occupancy history as demand and compare pricing policies.

Pure Python (numpy, the forecasting package and :mod:`pricing.policy`); no Django, so the
``simulate_pricing`` command and the tests share exactly this code.

The replay (every assumption is also listed in :attr:`SimulationResult.assumptions`):

- **Demand.** The recorded occupancy of a car park and hour was observed at the historic price
  ``P0`` (the base rate: history has one price). It is the latent demand ``D0`` in vehicles,
  except where the car park was full (rate >= ``full_threshold``): there demand is censored, and
  ``D0`` is the recorded count times ``full_demand_factor``.
- **Price response.** Under price ``P`` demand is ``D = D0 * (P / P0) ** e_true`` (constant
  elasticity). ``e_true`` is drawn per car park, uniformly from ``elasticity_range``, with
  ``numpy.random.default_rng(seed)`` in code order. No policy is told it.
- **Outcome of an hour.** ``served = min(D, capacity)``, ``turned_away = max(D - capacity, 0)``
  (vehicle-hours: the hourly mean of cars that found the car park full), ``revenue = served * P``.
  The hour is in band when ``low <= served / capacity <= high``.
- **Period.** The last ``weeks`` whole weeks of local dates; only hours with recorded history are
  simulated (the others have no demand to replay). Everything before is history at ``P0``.

Policies (all scored with the same ``e_true``, band and bounds):

``static_base``
    The base rate every hour.
``static_best_flat``
    Per car park, the one flat price on the step grid within the bounds that maximises the
    car park's in-band hours over the simulated period, chosen in hindsight with ``e_true``
    (ties: the higher revenue). An upper bound on what any single price can do.
``reactive_sfpark``
    SFpark's rule, made weekly: per car park and time band (local hours, weekday/weekend), if last
    week's mean served occupancy in that band was above the band, the rate goes up one fixed
    ``reactive_step``, below it down one step, within the bounds. Starts from the base rate; the
    first week reacts to the week before the period (history at the base rate).
``ours_band`` / ``ours_revenue``
    Every day, the project's :class:`~pricing.forecasting.OccupancyForecaster` (fitted once on the
    history before the period) forecasts each hour's occupancy at the reference price from data at
    least 24 h old, and :func:`pricing.policy.plan_rates` sets the day's rates (``mode="band"`` or
    ``"revenue"``) with the assumed elasticity (-0.4: history has one price, so nothing can be
    estimated), the bounds and the previous day's rates. During the period the forecaster sees
    only what an operator would see: the occupancy served at ITS OWN prices, converted back to the
    reference price with the assumed elasticity (never the replayed demand or ``e_true``).

    Revenue mode adds one rule of its own: an hour forecast to stay below the band even at the
    minimum rate is priced for revenue alone (with assumed inelastic demand, the maximum, at most
    ``max_daily_change`` a day), because ``plan_rates`` would lower it to the minimum, which loses
    revenue and buys no in-band hour. The decision uses the forecast and assumed elasticity only.

Money is evaluated in floats here (a simulation score, rounded to 2 places when reported); every
rate a policy sets is a ``Decimal`` on the step grid, converted once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from pricing.forecasting import CarParkSeries, ModelConfig, OccupancyForecaster
from pricing.forecasting.features import HOURS, Panel, build_panel
from pricing.policy import (
    DEFAULT_ELASTICITY,
    HourKey,
    Mode,
    PlanHour,
    RateBounds,
    TargetBand,
    plan_rates,
)

__all__ = [
    "POLICY_NAMES",
    "PolicyScore",
    "SimulationConfig",
    "SimulationResult",
    "plot_simulation",
    "simulate_pricing",
]

POLICY_NAMES: tuple[str, ...] = ("static_base", "static_best_flat", "reactive_sfpark", "ours_band", "ours_revenue")

DEFAULT_BOUNDS = RateBounds(
    minimum=Decimal("1.00"), maximum=Decimal("6.00"), max_daily_change=Decimal("1.00"), step=Decimal("0.10")
)

# Local-hour bands of the reactive rule: [start, end) hours, applied separately to weekdays and weekends.
DEFAULT_TIME_BANDS: tuple[tuple[str, int, int], ...] = (
    ("night", 0, 7),
    ("morning", 7, 11),
    ("midday", 11, 14),
    ("afternoon", 14, 18),
    ("evening", 18, 24),
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SimulationConfig:
    """Everything the replay assumes. Defaults are documented in ``docs/pricing-simulation.md``.

    ``base_rate`` is both the historic price ``P0`` and the static policy's price.
    ``forecast_config`` is passed to the forecaster (None: its defaults).
    """

    base_rate: Decimal = Decimal("2.00")
    currency: str = "GBP"
    bounds: RateBounds = DEFAULT_BOUNDS
    band: TargetBand = field(default_factory=TargetBand)
    weeks: int = 4
    seed: int = 0
    elasticity_range: tuple[float, float] = (-0.6, -0.2)
    assumed_elasticity: float = DEFAULT_ELASTICITY
    full_threshold: float = 0.98
    full_demand_factor: float = 1.10
    reactive_step: Decimal = Decimal("0.20")
    time_bands: tuple[tuple[str, int, int], ...] = DEFAULT_TIME_BANDS
    country: str | None = "GB"
    subdiv: str | None = "ENG"
    forecast_config: ModelConfig | None = None

    def __post_init__(self) -> None:
        low, high = self.elasticity_range
        if not low <= high < 0:
            raise ValueError("elasticity_range must be (low, high) with low <= high < 0")
        if self.weeks < 1:
            raise ValueError("weeks must be at least 1")
        if self.full_demand_factor < 1:
            raise ValueError("full_demand_factor must be at least 1")
        if self.reactive_step <= 0:
            raise ValueError("reactive_step must be positive")
        if not self.bounds.minimum <= self.base_rate <= self.bounds.maximum or self.base_rate <= 0:
            raise ValueError("base_rate must be positive and within the bounds")


@dataclass(frozen=True)
class PolicyScore:
    """One policy's outcome over every simulated car-park-hour.

    ``in_band_share``: share of car-park-hours with served occupancy inside the band;
    ``revenue``: sum of served x rate, in the base currency; ``turned_away``: vehicle-hours of
    demand above capacity.
    """

    in_band_share: float
    revenue: float
    turned_away: float
    hours: int

    def to_dict(self) -> dict[str, float]:
        return {
            "in_band_share": round(self.in_band_share, 4),
            "revenue": round(self.revenue, 2),
            "turned_away": round(self.turned_away, 1),
        }


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Outcome of :func:`simulate_pricing`. ``to_dict()`` is JSON-able.

    Arrays are ``[car park, simulated day, local hour]`` (NaN where the hour is not simulated):
    ``demand`` is ``D0`` at the base rate, ``prices[name]`` the rate each policy charged and
    ``occupancy[name]`` the served occupancy rate it got.
    """

    policies: dict[str, PolicyScore]
    assumptions: dict[str, Any]
    period_start: date
    period_end: date
    codes: tuple[str, ...]
    capacity: np.ndarray
    true_elasticity: dict[str, float]
    demand: np.ndarray = field(repr=False)
    prices: dict[str, np.ndarray] = field(repr=False)
    occupancy: dict[str, np.ndarray] = field(repr=False)

    @property
    def hours(self) -> int:
        return int((~np.isnan(self.demand)).sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "policies": {name: score.to_dict() for name, score in self.policies.items()},
            "period": {"start": self.period_start.isoformat(), "end": self.period_end.isoformat()},
            "car_parks": len(self.codes),
            "car_park_hours": self.hours,
            "true_elasticity": {code: round(e, 4) for code, e in self.true_elasticity.items()},
            "assumptions": self.assumptions,
        }


# --- The replay ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _World:
    """The simulated market: demand at the base rate and the hidden price response."""

    demand: np.ndarray  # (C, S, 24) D0 in vehicles, NaN = not simulated
    capacity: np.ndarray  # (C,)
    elasticity: np.ndarray  # (C,) e_true
    base: float

    def outcome(self, prices: np.ndarray, days: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """(served vehicles, turned-away vehicles) at ``prices`` for simulated ``days``."""
        cap = self.capacity[:, None, None]
        wanted = self.demand[:, days] * (prices / self.base) ** self.elasticity[:, None, None]
        return np.minimum(wanted, cap), np.maximum(wanted - cap, 0.0)


def _score(world: _World, prices: np.ndarray, band: TargetBand) -> tuple[PolicyScore, np.ndarray]:
    served, away = world.outcome(prices)
    mask = ~np.isnan(world.demand)
    rate = served / world.capacity[:, None, None]
    in_band = (rate >= band.low - 1e-9) & (rate <= band.high + 1e-9) & mask
    score = PolicyScore(
        in_band_share=float(in_band.sum() / mask.sum()),
        revenue=float(np.nansum(served * prices)),
        turned_away=float(np.nansum(away)),
        hours=int(mask.sum()),
    )
    return score, np.where(mask, rate, np.nan)


def _grid(bounds: RateBounds) -> list[Decimal]:
    """Every rate on the step grid within the bounds."""
    first = (bounds.minimum / bounds.step).to_integral_value(rounding="ROUND_CEILING")
    last = (bounds.maximum / bounds.step).to_integral_value(rounding="ROUND_FLOOR")
    return [(n * bounds.step).quantize(bounds.step) for n in range(int(first), int(last) + 1)]


def _static_best_flat(world: _World, config: SimulationConfig) -> np.ndarray:
    """Per car park the grid price with the most in-band hours in hindsight (ties: more revenue)."""
    mask = ~np.isnan(world.demand)
    best = np.full(len(world.capacity), float(config.base_rate))
    best_key = np.full((len(world.capacity), 2), -np.inf)
    for price in _grid(config.bounds):
        prices = np.where(mask, float(price), np.nan)
        served, _ = world.outcome(prices)
        rate = served / world.capacity[:, None, None]
        band = config.band
        hits = ((rate >= band.low - 1e-9) & (rate <= band.high + 1e-9) & mask).sum(axis=(1, 2))
        revenue = np.nansum(served * prices, axis=(1, 2))
        better = (hits > best_key[:, 0]) | ((hits == best_key[:, 0]) & (revenue > best_key[:, 1] + 1e-9))
        best = np.where(better, float(price), best)
        best_key[better] = np.c_[hits, revenue][better]
    return np.where(mask, best[:, None, None], np.nan)


def _band_index(config: SimulationConfig, first_weekday: int, days: int) -> np.ndarray:
    """(days, 24) index of the reactive rule's time band: band x (weekday, weekend)."""
    by_hour = np.full(HOURS, -1)
    for i, (_, start, end) in enumerate(config.time_bands):
        by_hour[start:end] = i
    if (by_hour < 0).any():
        raise ValueError("time_bands must cover every hour of the day")
    weekend = ((first_weekday + np.arange(days)) % 7 >= 5).astype(int)
    return by_hour[None, :] + len(config.time_bands) * weekend[:, None]


def _reactive(world: _World, config: SimulationConfig, warm_up_rate: np.ndarray, first_weekday: int) -> np.ndarray:
    """SFpark-style weekly steps per car park and time band (see the module docstring).

    ``warm_up_rate`` is the observed occupancy rate of the 7 days before the period (C, 7, 24),
    at the base rate.
    """
    n_cp, n_days, _ = world.demand.shape
    groups = 2 * len(config.time_bands)
    bands = _band_index(config, first_weekday, n_days)
    warm_bands = _band_index(config, (first_weekday - 7) % 7, 7)
    low, high = float(config.bounds.minimum), float(config.bounds.maximum)
    step = float(config.reactive_step)
    current = np.full((n_cp, groups), float(config.base_rate))
    prices = np.full(world.demand.shape, np.nan)
    last_rate, last_bands = warm_up_rate, warm_bands
    for week in range(n_days // 7):
        days = slice(7 * week, 7 * week + 7)
        for g in range(groups):
            cells = last_bands == g
            observed = last_rate[:, cells]
            has = ~np.isnan(observed).all(axis=1)
            mean = np.where(has, np.nanmean(np.where(has[:, None], observed, 0.0), axis=1), np.nan)
            up = has & (mean > config.band.high)
            down = has & (mean < config.band.low)
            # Rounded to cents: repeated float steps must not drift off the grid.
            current[:, g] = np.round(np.clip(current[:, g] + step * up - step * down, low, high), 2)
        week_bands = bands[days]
        week_prices = np.where(np.isnan(world.demand[:, days]), np.nan, current[:, week_bands])
        prices[:, days] = week_prices
        served, _ = world.outcome(week_prices, days)
        last_rate = served / world.capacity[:, None, None]
        last_bands = week_bands
    return prices


def _ours(
    world: _World,
    config: SimulationConfig,
    model: OccupancyForecaster,
    panel: Panel,
    split: int,
    mode: Mode,
    progress: Progress | None,
) -> np.ndarray:
    """Day by day: forecast at the reference price, plan with :func:`plan_rates`, observe.

    The forecaster's panel holds the recorded history before the period; each simulated day is
    appended after it is over, as the served occupancy converted back to the reference price with
    the ASSUMED elasticity (what an operator can compute), capped to [0, 1].
    """
    known = panel.rate.copy()
    known[:, split:] = np.nan
    seen = replace(panel, rate=known)  # `known` is filled in place as the days pass
    base = config.base_rate
    zone = ZoneInfo(panel.tz)
    n_cp, n_days, _ = world.demand.shape
    first_day: date = (panel.start_day + split).astype(date)
    prices = np.full(world.demand.shape, np.nan)
    # History was at the base rate: that is "yesterday's rate" for the first planned day.
    anchors: list[dict[HourKey, Decimal]] = [
        {(date.fromordinal(first_day.toordinal() - back), h): base for back in (1, 2) for h in range(HOURS)}
        for _ in range(n_cp)
    ]
    for s in range(n_days):
        day = date.fromordinal(first_day.toordinal() + s)
        c_idx, h_idx = np.nonzero(~np.isnan(world.demand[:, s]))
        if len(c_idx):
            forecast = model.predict_cells(seen, c_idx, np.full_like(c_idx, split + s), h_idx)
        for c in np.unique(c_idx).tolist():
            # plan_rates looks back two days at most.
            anchors[c] = {key: rate for key, rate in anchors[c].items() if (day - key[0]).days <= 2}
            planned: list[tuple[int, PlanHour]] = []
            for i in np.flatnonzero(c_idx == c).tolist():
                hour = int(h_idx[i])
                predicted = None if math.isnan(forecast[i]) else float(forecast[i])
                start = datetime(day.year, day.month, day.day, hour, tzinfo=zone)
                planned.append((hour, PlanHour(start=start, predicted_occupancy=predicted, reference_price=base)))
            decisions = plan_rates(
                [plan_hour for _, plan_hour in planned],
                base_rate=base,
                bounds=config.bounds,
                band=config.band,
                elasticity=config.assumed_elasticity,
                mode=mode,
                previous_rates=dict(anchors[c]),
            )
            for (hour, _), decision in zip(planned, decisions, strict=True):
                prices[c, s, hour] = float(decision.rate)
                anchors[c][(day, hour)] = decision.rate
        served, _ = world.outcome(prices[:, s : s + 1], slice(s, s + 1))
        observed = served[:, 0] / world.capacity[:, None]
        as_if_reference = observed * (prices[:, s] / float(base)) ** (-config.assumed_elasticity)
        known[:, split + s] = np.clip(as_if_reference, 0.0, 1.0)
        if progress is not None and (s + 1) % 7 == 0:
            progress(f"  {mode}: week {(s + 1) // 7} of {n_days // 7} planned")
    return prices


def simulate_pricing(
    series: Sequence[CarParkSeries], config: SimulationConfig | None = None, *, progress: Progress | None = None
) -> SimulationResult:
    """Replay the last ``config.weeks`` weeks of ``series`` under every policy in :data:`POLICY_NAMES`.

    ``series`` must share one time zone. Deterministic for a given config (seed included).
    ``progress`` receives short status lines. Raises ValueError when there is no data, the zones
    differ, or there is less than one week of history before the period.
    """
    config = config or SimulationConfig()
    items = sorted((s for s in series if len(s.local_hour)), key=lambda s: s.code)
    if not items:
        raise ValueError("no data")
    tz = items[0].tz
    if any(s.tz != tz for s in items):
        raise ValueError("all series must be in one time zone")
    panel = build_panel(items, tz=tz)
    n_sim = 7 * config.weeks
    split = panel.n_days - n_sim
    if split < 7:
        raise ValueError(f"need at least one week of history before the {config.weeks}-week period")
    capacity = panel.capacity.astype(float)
    full = panel.rate >= config.full_threshold
    latent = panel.rate * capacity[:, None, None] * np.where(full, config.full_demand_factor, 1.0)
    rng = np.random.default_rng(config.seed)
    low, high = config.elasticity_range
    elasticity = rng.uniform(low, high, size=len(items))
    base = float(config.base_rate)
    world = _World(demand=latent[:, split:], capacity=capacity, elasticity=elasticity, base=base)
    mask = ~np.isnan(world.demand)
    period_start: date = (panel.start_day + split).astype(date)
    period_end: date = (panel.start_day + panel.n_days - 1).astype(date)
    if not mask.any():
        raise ValueError("no recorded hour in the simulated period")
    say = progress or (lambda _message: None)
    say(f"Simulating {len(items)} car parks, {period_start} .. {period_end} ({int(mask.sum())} car-park-hours)")

    prices: dict[str, np.ndarray] = {"static_base": np.where(mask, base, np.nan)}
    prices["static_best_flat"] = _static_best_flat(world, config)
    warm_up = np.minimum(latent[:, split - 7 : split] / capacity[:, None, None], 1.0)
    prices["reactive_sfpark"] = _reactive(world, config, warm_up, period_start.weekday())
    say(f"Fitting the occupancy forecaster on history before {period_start} ...")
    model = OccupancyForecaster(
        tz=tz, country=config.country, subdiv=config.subdiv, seed=config.seed, config=config.forecast_config
    )
    model.fit(items, end=period_start)
    modes: tuple[tuple[str, Mode], ...] = (("ours_band", "band"), ("ours_revenue", "revenue"))
    for name, mode in modes:
        say(f"Planning {name} day by day ...")
        prices[name] = _ours(world, config, model, panel, split, mode, progress)

    scores: dict[str, PolicyScore] = {}
    occupancy: dict[str, np.ndarray] = {}
    for name in POLICY_NAMES:
        scores[name], occupancy[name] = _score(world, prices[name], config.band)
    return SimulationResult(
        policies=scores,
        assumptions=_assumptions(config, full_hours=int((full[:, split:] & mask).sum())),
        period_start=period_start,
        period_end=period_end,
        codes=tuple(s.code for s in items),
        capacity=capacity,
        true_elasticity={s.code: float(e) for s, e in zip(items, elasticity, strict=True)},
        demand=world.demand,
        prices=prices,
        occupancy=occupancy,
    )


def _assumptions(config: SimulationConfig, *, full_hours: int) -> dict[str, Any]:
    bounds, band = config.bounds, config.band
    low, high = config.elasticity_range
    bands = ", ".join(f"{name} {start:02d}-{end:02d}" for name, start, end in config.time_bands)
    return {
        "currency": config.currency,
        "base_rate": str(config.base_rate),
        "bounds": {
            "minimum": str(bounds.minimum),
            "maximum": str(bounds.maximum),
            "max_daily_change": None if bounds.max_daily_change is None else str(bounds.max_daily_change),
            "step": str(bounds.step),
        },
        "band": {"low": band.low, "high": band.high},
        "weeks": config.weeks,
        "seed": config.seed,
        "period": (
            f"The last {config.weeks} whole weeks of local dates are simulated; only hours with recorded "
            "history (no demand is invented for hours without data). The history before is at the base "
            "rate and trains the forecaster and warms up the reactive rule."
        ),
        "demand": (
            f"Recorded occupancy was observed at the historic price, taken to be the base rate "
            f"{config.base_rate} {config.currency}/h (history has one price), and is the latent demand D0 "
            f"at that price. Under price P demand is D0 * (P / {config.base_rate}) ** e_true; "
            "served = min(D, capacity), turned away = max(D - capacity, 0), revenue = served * P."
        ),
        "censored_demand": (
            f"Where the car park was full (recorded rate >= {config.full_threshold}) demand is censored: "
            f"D0 = recorded x {config.full_demand_factor} ({full_hours} simulated hours)."
        ),
        "true_elasticity": (
            f"e_true per car park ~ Uniform[{low}, {high}] (numpy default_rng(seed), car parks in code "
            f"order), around the literature's {DEFAULT_ELASTICITY}; no policy is told it."
        ),
        "assumed_elasticity": (
            f"Our policies plan with {config.assumed_elasticity}: the history has one price, so "
            "pricing.policy.estimate_elasticity has nothing to estimate from."
        ),
        "in_band": f"An hour is in band when {band.low} <= served / capacity <= {band.high}.",
        "turned_away": "Vehicle-hours: the hourly mean number of cars that wanted to park but found it full.",
        "static_best_flat": (
            "Per car park, the single grid price within the bounds with the most in-band hours over the "
            "simulated period, chosen in hindsight with e_true (ties: more revenue)."
        ),
        "reactive_sfpark": (
            f"Weekly, per car park and time band ({bands}; weekdays and weekends apart): last week's mean "
            f"served occupancy above the band -> +{config.reactive_step}, below -> -{config.reactive_step}, "
            "within the bounds; starts at the base rate, the first week reacts to the week before the "
            f"period. The step is the grid multiple nearest SFpark's $0.25 (step {bounds.step}); weekly is "
            "faster than SFpark's roughly bimonthly changes, which favours the rule."
        ),
        "ours": (
            "OccupancyForecaster fitted once on the history before the period; each day it forecasts the "
            "day's hours at the reference price from data >= 24 h old, and pricing.policy.plan_rates sets "
            "the rates (mode band or revenue) within the bounds, chained to the previous day's rates. "
            "During the period the forecaster sees the occupancy served at our own prices converted back "
            "to the reference price with the assumed elasticity, never the replayed demand or e_true."
        ),
        "ours_revenue_out_of_reach": (
            "Revenue mode only: an hour forecast (assumed elasticity) to stay below the band even at the "
            "minimum rate is priced for revenue alone instead of at the minimum plan_rates would choose: "
            "with elasticity above -1 revenue rises with the rate, so the maximum, approached at most "
            "max_daily_change a day from the same hour yesterday. Other hours: plan_rates unchanged."
        ),
        "money": "Evaluated in floats (a simulation score); rates are Decimal grid prices; revenue rounded to 0.01.",
    }


# --- Plots -------------------------------------------------------------------------------------

_COLOURS = {
    "static_base": "tab:gray",
    "static_best_flat": "tab:brown",
    "reactive_sfpark": "tab:orange",
    "ours_band": "tab:blue",
    "ours_revenue": "tab:green",
}


def plot_simulation(result: SimulationResult, directory: str | Path, *, car_park: str | None = None) -> list[Path]:
    """Write two PNGs into ``directory`` and return their paths.

    ``simulation-occupancy-<end>.png``: served-occupancy distribution and in-band share per
    policy. ``simulation-week-<code>-<end>.png``: rates and served occupancy of every policy over
    the last simulated week of ``car_park`` (default: the car park with the highest mean demand).
    """
    # matplotlib lazily and through the Agg canvas (no pyplot): no process-wide backend state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    band = result.assumptions["band"]
    paths: list[Path] = []

    fig = Figure(figsize=(12, 4.5))
    FigureCanvasAgg(fig)
    hist_ax, bar_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    bins = np.linspace(0, 1, 41)
    for name in POLICY_NAMES:
        values = result.occupancy[name][~np.isnan(result.occupancy[name])]
        hist_ax.hist(values, bins=bins, histtype="step", lw=1.4, color=_COLOURS[name], label=name, density=True)
    hist_ax.axvspan(band["low"], band["high"], color="tab:green", alpha=0.08, label="target band")
    hist_ax.set_xlabel("served occupancy (share of capacity)")
    hist_ax.set_ylabel("density of car-park-hours")
    hist_ax.legend(fontsize=8)
    shares = [result.policies[name].in_band_share for name in POLICY_NAMES]
    bar_ax.barh(list(POLICY_NAMES), shares, color=[_COLOURS[n] for n in POLICY_NAMES])
    for y, share in enumerate(shares):
        bar_ax.text(share, y, f" {share:.1%}", va="center", fontsize=8)
    bar_ax.set_xlim(0, max(shares) * 1.3 + 1e-9)
    bar_ax.set_xlabel("share of car-park-hours in band")
    bar_ax.invert_yaxis()
    fig.suptitle(f"Pricing simulation {result.period_start} .. {result.period_end}", fontsize=10)
    fig.tight_layout()
    path = out / f"simulation-occupancy-{result.period_end}.png"
    fig.savefig(path, dpi=110)
    paths.append(path)

    mean_demand = np.nanmean(result.demand / result.capacity[:, None, None], axis=(1, 2))
    index = result.codes.index(car_park) if car_park is not None else int(np.nanargmax(mean_demand))
    code = result.codes[index]
    week = slice(result.demand.shape[1] - 7, result.demand.shape[1])
    cells = ~np.isnan(result.demand[index, week]).ravel()
    if cells.any():
        fig = Figure(figsize=(12, 6))
        FigureCanvasAgg(fig)
        price_ax, occ_ax = fig.subplots(2, 1, sharex=True)
        x = np.arange(int(cells.sum()))
        for name in POLICY_NAMES:
            price_ax.step(x, result.prices[name][index, week].ravel()[cells], where="mid", color=_COLOURS[name])
            occ_ax.plot(x, result.occupancy[name][index, week].ravel()[cells], color=_COLOURS[name], label=name)
        demand = (result.demand[index, week] / result.capacity[index]).ravel()[cells]
        occ_ax.plot(x, demand, color="black", ls="--", lw=0.8, label="demand at base rate")
        occ_ax.axhspan(band["low"], band["high"], color="tab:green", alpha=0.08)
        price_ax.set_ylabel(f"rate ({result.assumptions['currency']}/h)")
        occ_ax.set_ylabel("served occupancy")
        occ_ax.legend(fontsize=7, ncol=3)
        hours = (np.arange(7 * HOURS) // HOURS)[cells]
        starts = np.flatnonzero(np.r_[True, hours[1:] != hours[:-1]])
        first = result.period_end.toordinal() - 6
        occ_ax.set_xticks(starts)
        occ_ax.set_xticklabels([date.fromordinal(first + int(hours[i])).strftime("%a %d %b") for i in starts])
        e_true = result.true_elasticity[code]
        price_ax.set_title(f"{code}: last simulated week (e_true {e_true:.2f}; hours with data only)", fontsize=10)
        fig.tight_layout()
        path = out / f"simulation-week-{code}-{result.period_end}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths
