"""Rate policy: pure functions that turn predicted occupancy into hourly rates.

No Django here, so the pricing simulation (``simulate_pricing``), the publisher
(``pricing.rates``) and the property tests all share exactly this arithmetic.

Public contract
---------------

``occupancy_at(price, reference_price, reference_occupancy, elasticity) -> float``
    Constant-elasticity price response: ``q = q0 * (price / p0) ** elasticity``, capped to
    ``[0, 1]``. ``elasticity`` is negative (parking studies report about -0.4: a 10% price rise
    loses about 4% of occupancy). A zero reference price or a non-negative elasticity means
    "price does not move occupancy" and returns ``q0`` (capped).

``plan_rates(hours, *, base_rate, bounds, band, elasticity, mode="band", previous_rates=None,
overrides=None, elasticity_source="default") -> list[RateDecision]``
    One decision per ``PlanHour`` (same order). For each hour:

    1. an operator override for that hour wins outright (``bound_applied="override"``): it is
       neither rounded to the step nor limited by the daily change (the API keeps it inside
       ``[minimum, maximum]``);
    2. no prediction (``predicted_occupancy is None``: no history, no active model) -> the base
       rate, reason ``"no_history"``;
    3. otherwise, starting from the same local hour of the previous day (or the reference price
       when there is none), keep the rate if its predicted occupancy is inside the band, else
       move to the price that puts occupancy on the nearest band edge (``mode="band"``), or the
       revenue-maximising edge of the band (``mode="revenue"``);
    4. then the rate is snapped to the price step (in the direction that keeps occupancy in the
       band) and kept within ``[minimum, maximum]`` and within ``max_daily_change`` of the same
       local hour of the previous day. ``bound_applied`` names the limit that moved it.
       Minimum and maximum win over the daily change limit when both cannot hold (e.g. the
       operator has just narrowed the bounds).

    Hours are keyed by *local* date and hour, so the previous-day lookup survives DST: on a
    25-hour day both occurrences of the repeated hour compare with the previous day's hour, and
    the next day compares with the first occurrence; after a 23-hour day the missing hour is
    looked up one more day back. Decisions chain through the horizon: day 2 is limited by the
    rates just planned for day 1. ``previous_rates`` holds already published rates for hours
    before the horizon, keyed ``(local date, local hour)``.

``estimate_elasticity(prices, occupancy, groups) -> ElasticityEstimate | None``
    Log-log regression of occupancy on price with a fixed effect per group (car park x hour of
    week), so the slope comes only from price changes within the same hour of the week.
    ``None`` when prices did not vary enough to say anything.

``resolve_elasticity(estimate, operator_value, default) -> (elasticity, source)``
    The issue's order: an estimate from history, else the operator's value, else the default
    (``settings.PRICING_DEFAULT_ELASTICITY``, -0.4).

Money is ``Decimal`` throughout. The demand curve itself is evaluated in floats (it is an
estimate, not an amount); every price that leaves this module is a ``Decimal`` on the step grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

DEFAULT_ELASTICITY = -0.4
"""Parking studies (e.g. SFpark evaluations, Concas & Nayak's meta-analysis) report about -0.4."""

ASSUMPTION_TEXT = (
    "Occupancy is assumed to respond to price with constant elasticity: occupancy = "
    "predicted occupancy x (rate / reference rate) ^ elasticity. Without enough price variation "
    "in the history to estimate it, the elasticity is the operator's value or the default of -0.4 "
    "reported by parking studies (a 10% higher rate loses about 4% of occupancy)."
)

Mode = Literal["band", "revenue"]
BoundApplied = Literal["minimum", "maximum", "daily_change", "override"]
ElasticitySource = Literal["estimated", "operator", "default"]
HourKey = tuple[date, int]
"""(local date, local hour): how an hour is found again on the previous day."""

# Reasons a decision carries (stable strings: stored in PublishedRate.reason and shown by the API).
REASON_OVERRIDE = "override"
REASON_NO_HISTORY = "no_history"
REASON_WITHIN_BAND = "within_band"
REASON_RAISE = "raise_to_band"
REASON_LOWER = "lower_to_band"
REASON_REVENUE = "revenue_max"
REASON_REVENUE_BAND_UNREACHABLE = "revenue_max_band_unreachable"
REASON_NO_RESPONSE = "no_price_response"


@dataclass(frozen=True, slots=True)
class RateBounds:
    """The operator's limits. ``max_daily_change`` is an amount (None: no limit)."""

    minimum: Decimal
    maximum: Decimal
    max_daily_change: Decimal | None
    step: Decimal

    def __post_init__(self) -> None:
        if self.minimum < 0 or self.maximum < self.minimum:
            raise ValueError("need 0 <= minimum <= maximum")
        if self.step <= 0:
            raise ValueError("step must be positive")
        if self.max_daily_change is not None and self.max_daily_change < 0:
            raise ValueError("max_daily_change must not be negative")


@dataclass(frozen=True, slots=True)
class TargetBand:
    """Target occupancy as fractions of capacity, ``0 <= low < high <= 1``."""

    low: float = 0.70
    high: float = 0.85

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high <= 1:
            raise ValueError("need 0 <= low < high <= 1")

    def contains(self, occupancy: float) -> bool:
        return self.low <= occupancy <= self.high


@dataclass(frozen=True, slots=True)
class PlanHour:
    """One hour to price: its aware start in the car park's zone and the forecast for it.

    ``predicted_occupancy`` is the forecast at ``reference_price`` (None: no history or no
    model). ``reference_price`` None means the plan's ``base_rate``.
    """

    start: datetime
    predicted_occupancy: float | None
    reference_price: Decimal | None = None

    @property
    def key(self) -> HourKey:
        return (self.start.date(), self.start.hour)


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The rate chosen for one hour and why.

    ``previous_rate`` is the same local hour of the previous day that the daily limit was
    measured against (None: none known). ``policy_rate`` is what the policy alone would have
    chosen; it differs from ``rate`` only under an override and is what the next day chains from,
    so a one-off override (an event) does not drag the following days with it.
    """

    rate: Decimal
    predicted_occupancy_at_rate: float | None
    reason: str
    bound_applied: BoundApplied | None
    elasticity_source: ElasticitySource
    elasticity: float = DEFAULT_ELASTICITY
    previous_rate: Decimal | None = None
    policy_rate: Decimal | None = None
    start: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ElasticityEstimate:
    elasticity: float
    stderr: float
    n: int


# --- Demand curve ---------------------------------------------------------------------------


def _cap(value: float) -> float:
    return min(1.0, max(0.0, value))


def occupancy_at(price: Decimal, reference_price: Decimal, reference_occupancy: float, elasticity: float) -> float:
    """Predicted occupancy at ``price`` given ``reference_occupancy`` at ``reference_price``.

    Constant elasticity, capped to [0, 1]. A free car park (price 0) with negative elasticity
    fills up (1.0) unless nobody came at the reference price.
    """
    if reference_price <= 0 or elasticity >= 0 or reference_occupancy <= 0:
        return _cap(reference_occupancy)
    if price <= 0:
        return 1.0
    ratio = float(price) / float(reference_price)
    return _cap(reference_occupancy * ratio**elasticity)


def _price_for(target: float, reference_price: Decimal, reference_occupancy: float, elasticity: float) -> float:
    """The (unrounded) price at which the curve reaches ``target`` occupancy."""
    return float(reference_price) * (target / reference_occupancy) ** (1.0 / elasticity)


# --- Step grid and limits ---------------------------------------------------------------------


def _snap(value: Decimal, step: Decimal, *, up: bool) -> Decimal:
    units = (value / step).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return (units * step).quantize(step)


def _snap_up_positive(target: float, step: Decimal) -> Decimal:
    """Round a positive price up to the grid; a price too small for six places is one step, not 0
    (a free car park fills up: 0 would undo the raise)."""
    return max(_snap(_to_decimal(target), step, up=True), step)


def _to_decimal(value: float) -> Decimal:
    # Six places is far finer than any step; it keeps float noise (2.4999999) out of snapping.
    return Decimal(f"{value:.6f}")


@dataclass(frozen=True, slots=True)
class _Window:
    """The on-grid interval a rate may take this hour, and which limit set each end."""

    low: Decimal
    high: Decimal
    low_bound: BoundApplied
    high_bound: BoundApplied


def _window(bounds: RateBounds, previous: Decimal | None) -> _Window | None:
    """Allowed on-grid prices; None when no multiple of the step lies within the bounds."""
    low, high = bounds.minimum, bounds.maximum
    low_bound: BoundApplied = "minimum"
    high_bound: BoundApplied = "maximum"
    if previous is not None and bounds.max_daily_change is not None:
        limited_low = previous - bounds.max_daily_change
        limited_high = previous + bounds.max_daily_change
        # Bounds win over the daily limit when both cannot hold.
        if limited_low <= high and limited_high >= low:
            if limited_low > low:
                low, low_bound = limited_low, "daily_change"
            if limited_high < high:
                high, high_bound = limited_high, "daily_change"
    grid_low, grid_high = _snap(low, bounds.step, up=True), _snap(high, bounds.step, up=False)
    if grid_low > grid_high and (low_bound, high_bound) != ("minimum", "maximum"):
        return _window(bounds, None)  # no step inside the daily limit: fall back to the bounds
    if grid_low > grid_high:
        return None
    return _Window(grid_low, grid_high, low_bound, high_bound)


def _clamp(desired: Decimal, window: _Window) -> tuple[Decimal, BoundApplied | None]:
    if desired < window.low:
        return window.low, window.low_bound
    if desired > window.high:
        return window.high, window.high_bound
    return desired, None


# --- Choosing a rate ----------------------------------------------------------------------------


def _desired_rate(
    start_rate: Decimal,
    reference_price: Decimal,
    occupancy: float,
    *,
    band: TargetBand,
    elasticity: float,
    mode: Mode,
    bounds: RateBounds,
) -> tuple[Decimal, str]:
    """The on-grid rate the band (or revenue) asks for, before the operator's limits."""
    step = bounds.step
    if occupancy <= 0:
        # Nobody comes at any price on this curve: the lowest price is the only lever.
        return Decimal(0), REASON_LOWER
    if elasticity >= 0 or reference_price <= 0:
        # No usable curve (a free reference rate, or demand that does not fall with price).
        return _snap(start_rate, step, up=False), REASON_NO_RESPONSE
    if mode == "revenue":
        # Revenue ~ price ** (1 + elasticity) while occupancy is below capacity: inelastic demand
        # (e > -1) earns most at the highest price still in the band (occupancy at `low`),
        # elastic demand at the lowest (occupancy at `high`).
        if elasticity > -1:
            if occupancy_at(bounds.minimum, reference_price, occupancy, elasticity) < band.low:
                # Below the band even at the minimum: a lower rate buys no in-band hour and, with
                # inelastic demand, loses revenue; the maximum earns most (the daily limit paces it).
                return _snap(bounds.maximum, step, up=False), REASON_REVENUE_BAND_UNREACHABLE
            target = _price_for(band.low, reference_price, occupancy, elasticity)
            return _snap(_to_decimal(target), step, up=False), REASON_REVENUE
        target = _price_for(band.high, reference_price, occupancy, elasticity)
        return _snap_up_positive(target, step), REASON_REVENUE
    at_start = occupancy_at(start_rate, reference_price, occupancy, elasticity)
    if at_start > band.high:
        # Smallest price that brings occupancy down to the top of the band: round up.
        target = _price_for(band.high, reference_price, occupancy, elasticity)
        return _snap_up_positive(target, step), REASON_RAISE
    if at_start < band.low:
        # Largest price that brings occupancy up to the bottom of the band: round down.
        target = _price_for(band.low, reference_price, occupancy, elasticity)
        return _snap(_to_decimal(target), step, up=False), REASON_LOWER
    return _snap(start_rate, step, up=False), REASON_WITHIN_BAND


def _previous_rate(anchors: Mapping[HourKey, Decimal], key: HourKey) -> Decimal | None:
    day, hour = key
    for days_back in (1, 2):  # 2: the hour did not exist yesterday (a 23-hour day)
        found = anchors.get((day - timedelta(days=days_back), hour))
        if found is not None:
            return found
    return None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("plan_rates needs aware datetimes")
    return moment.astimezone(UTC)


def plan_rates(
    hours: Sequence[PlanHour],
    *,
    base_rate: Decimal,
    bounds: RateBounds,
    band: TargetBand,
    elasticity: float,
    mode: Mode = "band",
    previous_rates: Mapping[HourKey, Decimal] | None = None,
    overrides: Mapping[datetime, Decimal] | None = None,
    elasticity_source: ElasticitySource = "default",
) -> list[RateDecision]:
    """Choose a rate for each hour (see the module docstring for the rules).

    ``hours`` must be in time order with aware ``start`` in the car park's zone; ``overrides``
    maps an hour's start instant (any zone) to the operator's rate. Raises ``ValueError`` for
    naive datetimes.
    """
    anchors: dict[HourKey, Decimal] = dict(previous_rates or {})
    override_by_instant = {_utc(moment): rate for moment, rate in (overrides or {}).items()}
    decisions: list[RateDecision] = []
    for hour in hours:
        key = hour.key
        previous = _previous_rate(anchors, key)
        decision = _decide(
            hour,
            previous=previous,
            base_rate=base_rate,
            bounds=bounds,
            band=band,
            elasticity=elasticity,
            mode=mode,
            elasticity_source=elasticity_source,
        )
        override = override_by_instant.get(_utc(hour.start))
        if override is not None:
            decision = _overridden(decision, override, hour, base_rate, elasticity)
        # First occurrence wins on a 25-hour day: the next day compares with it.
        anchors.setdefault(key, decision.policy_rate if decision.policy_rate is not None else decision.rate)
        decisions.append(decision)
    return decisions


def _decide(
    hour: PlanHour,
    *,
    previous: Decimal | None,
    base_rate: Decimal,
    bounds: RateBounds,
    band: TargetBand,
    elasticity: float,
    mode: Mode,
    elasticity_source: ElasticitySource,
) -> RateDecision:
    reference = hour.reference_price if hour.reference_price is not None else base_rate
    window = _window(bounds, previous)
    forecast = None if hour.predicted_occupancy is None else _cap(hour.predicted_occupancy)
    if forecast is None:
        desired, reason = _snap(base_rate, bounds.step, up=False), REASON_NO_HISTORY
    else:
        start_rate = previous if previous is not None else reference
        desired, reason = _desired_rate(
            start_rate,
            reference,
            forecast,
            band=band,
            elasticity=elasticity,
            mode=mode,
            bounds=bounds,
        )
    bound: BoundApplied | None
    if window is None:
        # No step fits inside [minimum, maximum]: the minimum, off the grid, is the honest answer.
        rate, bound = bounds.minimum, "minimum"
    else:
        rate, bound = _clamp(desired, window)
    predicted = None if forecast is None else occupancy_at(rate, reference, forecast, elasticity)
    return RateDecision(
        rate=rate,
        predicted_occupancy_at_rate=predicted,
        reason=reason,
        bound_applied=bound,
        elasticity_source=elasticity_source,
        elasticity=elasticity,
        previous_rate=previous,
        policy_rate=rate,
        start=hour.start,
    )


def _overridden(
    decision: RateDecision, override: Decimal, hour: PlanHour, base_rate: Decimal, elasticity: float
) -> RateDecision:
    predicted = None
    if hour.predicted_occupancy is not None:
        reference = hour.reference_price if hour.reference_price is not None else base_rate
        predicted = occupancy_at(override, reference, hour.predicted_occupancy, elasticity)
    return RateDecision(
        rate=override,
        predicted_occupancy_at_rate=predicted,
        reason=REASON_OVERRIDE,
        bound_applied="override",
        elasticity_source=decision.elasticity_source,
        elasticity=elasticity,
        previous_rate=decision.previous_rate,
        policy_rate=decision.rate,
        start=hour.start,
    )


# --- Elasticity ----------------------------------------------------------------------------------

MIN_OBSERVATIONS = 50
MIN_LOG_PRICE_SPREAD = 0.02
"""Within-group standard deviation of log price below ~2% says nothing about the response."""


def estimate_elasticity(
    prices: Sequence[Decimal | float], occupancy: Sequence[float], groups: Sequence[object]
) -> ElasticityEstimate | None:
    """Elasticity of occupancy with respect to price, from history where prices varied.

    ``log(occupancy) = a[group] + elasticity * log(price)``: ``groups`` labels each observation
    (car park x hour of week), and demeaning within groups removes everything that differs
    between hours of the week, leaving only within-hour price changes. Observations with zero
    price or zero occupancy carry no log and are dropped; hours at capacity are kept (a known
    downward bias towards zero, which errs on the side of smaller price moves).

    Returns None when fewer than ``MIN_OBSERVATIONS`` usable rows remain or log prices barely
    vary within groups.
    """
    import numpy as np  # local: keeps importing the policy cheap for request-time code

    if not len(prices) == len(occupancy) == len(groups):
        raise ValueError("prices, occupancy and groups must have the same length")
    rows = [
        (math.log(float(p)), math.log(q), g)
        for p, q, g in zip(prices, occupancy, groups, strict=True)
        if p > 0 and q > 0
    ]
    if len(rows) < MIN_OBSERVATIONS:
        return None
    labels: dict[object, int] = {}
    group_index = np.array([labels.setdefault(g, len(labels)) for _, _, g in rows])
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    counts = np.bincount(group_index)
    x_within = x - (np.bincount(group_index, weights=x) / counts)[group_index]
    y_within = y - (np.bincount(group_index, weights=y) / counts)[group_index]
    n, groups_count = len(rows), len(labels)
    degrees = n - groups_count - 1
    sxx = float(x_within @ x_within)
    if degrees < 1 or math.sqrt(sxx / n) < MIN_LOG_PRICE_SPREAD:
        return None
    slope = float(x_within @ y_within) / sxx
    residuals = y_within - slope * x_within
    stderr = math.sqrt(float(residuals @ residuals) / degrees / sxx)
    return ElasticityEstimate(elasticity=slope, stderr=stderr, n=n)


def resolve_elasticity(
    estimate: float | None, operator_value: float | None, default: float = DEFAULT_ELASTICITY
) -> tuple[float, ElasticitySource]:
    """Which elasticity to plan with, and where it came from (estimate, operator, default).

    An estimate that is not negative is ignored: demand rising with price means the history is
    confounded (prices were raised because demand was high), not that drivers like paying more.
    """
    if estimate is not None and estimate < 0:
        return estimate, "estimated"
    if operator_value is not None:
        return operator_value, "operator"
    return default, "default"
