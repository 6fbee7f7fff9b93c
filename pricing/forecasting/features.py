"""Feature construction for the occupancy model, vectorised over car parks x days x hours.

Everything is laid out on a *panel*: arrays indexed ``[car_park, local_day, local_hour_of_day]``
(24 hours per local date, NaN where there is no data). Working per local date and hour keeps the
features in local time (car parks open at 08:00 local all year) and makes the lags plain index
shifts. The panel also keeps the UTC start of every (day, hour) cell so that the information
cut-off is enforced in real elapsed time, which matters across DST changes.

No-leakage contract: the features of a target cell ``(c, d, h)`` read only cells whose UTC start
is at or before ``utc(d, h) - 24 h`` (the forecast origin). Lags of two days or more and all
weekly profiles satisfy that by construction; same-hour-yesterday and "yesterday so far" are
masked explicitly with the UTC times (so the day after a spring-forward change, where the same
local hour yesterday is only 23 h earlier, that lag is treated as missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import holidays as holidays_lib
import numpy as np

from .series import CarParkSeries, local_hours_to_utc

__all__ = [
    "FeatureConfig",
    "FeatureMatrix",
    "Panel",
    "PanelStats",
    "build_features",
    "build_panel",
    "panel_stats",
    "seasonal_naive",
]

HOURS = 24
ORIGIN_HOURS = 24  # the forecast origin lies this many hours before the target hour


@dataclass(frozen=True)
class FeatureConfig:
    """Knobs of the feature set (defaults chosen on validation weeks inside the training period).

    ``profile_weeks``: how many past same-weekday-and-hour values make the weekly profile.
    ``lag_days``: same-local-hour lags in days (1 = exactly 24 h before, the newest allowed).
    ``fallback_weeks``: how far back the "most recent same weekday and hour" search goes.
    ``use_season``: add day-of-year sin/cos (off by default: with a few months of data a tree can
    use it to memorise calendar weeks instead of learning the seasonality).
    ``level_days``: length of the "last week" and "week before" windows of the trend features.
    """

    profile_weeks: int = 4
    lag_days: tuple[int, ...] = (1, 2, 3, 14, 21, 28)
    fallback_weeks: int = 8
    use_season: bool = False
    level_days: int = 7

    @property
    def lookback_days(self) -> int:
        """Days of history before a target that the features can reach (excl. long-run means)."""
        return max(
            7 * self.fallback_weeks,
            7 * (self.profile_weeks + 1),  # profile of the anchor day, one week back
            max(self.lag_days, default=1),
            8 + self.level_days,  # the week before the last week
        )


@dataclass(frozen=True, eq=False)
class Panel:
    """Dense ``[car_park, day, hour]`` arrays for a set of car parks sharing one time zone.

    ``start_day`` is the local date of day index 0. ``rate`` is occupancy / capacity (NaN =
    missing). ``booked`` and ``price`` are NaN where unknown. ``utc`` holds, per ``(day, hour)``,
    the UTC start of that local hour in whole hours since the Unix epoch (``fold=0``).
    """

    codes: tuple[str, ...]
    capacity: np.ndarray
    start_day: np.datetime64
    rate: np.ndarray
    booked: np.ndarray
    price: np.ndarray
    utc: np.ndarray
    tz: str

    @property
    def n_days(self) -> int:
        return int(self.rate.shape[1])

    def day_index(self, local_hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(day index, hour of day) of naive local ``datetime64[h]`` hour starts."""
        hours = np.asarray(local_hours, dtype="datetime64[h]")
        days = hours.astype("datetime64[D]")
        return (days - self.start_day).astype(np.int64), (hours - days).astype(np.int64)

    def dates(self) -> np.ndarray:
        """Local date of every day index (``datetime64[D]``)."""
        return self.start_day + np.arange(self.n_days)


def build_panel(
    series: Sequence[CarParkSeries],
    *,
    tz: str,
    start_day: np.datetime64 | None = None,
    end_day: np.datetime64 | None = None,
) -> Panel:
    """Lay ``series`` out on a panel covering ``start_day .. end_day`` (inclusive, local dates).

    Defaults cover the union of the series' dates. Hours outside the range are ignored. All series
    must be in ``tz`` (their ``local_hour`` is wall-clock time of that zone).
    """
    for s in series:
        if s.tz != tz:
            raise ValueError(f"{s.code}: series zone {s.tz!r} differs from panel zone {tz!r}")
    if start_day is None or end_day is None:
        nonempty = [s.local_hour for s in series if len(s.local_hour)]
        if not nonempty:
            raise ValueError("cannot infer the panel range from empty series")
        lo = min(h.min() for h in nonempty).astype("datetime64[D]")
        hi = max(h.max() for h in nonempty).astype("datetime64[D]")
        start_day = lo if start_day is None else start_day
        end_day = hi if end_day is None else end_day
    first_day = _as_day(start_day)
    last_day = _as_day(end_day)
    n_days = int((last_day - first_day).astype(np.int64)) + 1
    if n_days <= 0:
        raise ValueError("end_day is before start_day")
    shape = (len(series), n_days, HOURS)
    rate = np.full(shape, np.nan)
    booked = np.full(shape, np.nan)
    price = np.full(shape, np.nan)
    for c, s in enumerate(series):
        days = s.local_hour.astype("datetime64[D]")
        d = (days - first_day).astype(np.int64)
        h = (s.local_hour - days).astype(np.int64)
        keep = (d >= 0) & (d < n_days)
        rate[c, d[keep], h[keep]] = s.rate[keep]
        if s.booked_rate is not None:
            booked[c, d[keep], h[keep]] = s.booked_rate[keep]
        if s.price is not None:
            price[c, d[keep], h[keep]] = s.price[keep]
    grid = (first_day + np.arange(n_days)).astype("datetime64[h]")[:, None] + np.arange(HOURS)
    utc = local_hours_to_utc(grid.ravel(), tz).astype(np.int64).reshape(n_days, HOURS)
    return Panel(
        codes=tuple(s.code for s in series),
        capacity=np.array([s.capacity for s in series], dtype=float),
        start_day=first_day,
        rate=rate,
        booked=booked,
        price=price,
        utc=utc,
        tz=tz,
    )


def _as_day(value: np.datetime64 | str) -> np.datetime64:
    """A local date as ``datetime64[D]`` (accepts any datetime64 unit or an ISO string)."""
    return np.datetime64(np.datetime64(value).astype("datetime64[D]").item(), "D")


def _shift_days(arr: np.ndarray, k: int) -> np.ndarray:
    """``out[:, d] = arr[:, d - k]`` (NaN where ``d - k < 0``); works on (C, D) and (C, D, H)."""
    out = np.full_like(arr, np.nan)
    if k < arr.shape[1]:
        out[:, k:] = arr[:, : arr.shape[1] - k]
    return out


def _nanmean(stack: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """NaN-ignoring mean and count without the all-NaN RuntimeWarning of ``np.nanmean``."""
    ok = ~np.isnan(stack)
    count = ok.sum(axis=axis)
    total = np.where(ok, stack, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan), count


def _nanmedian_first_axis(stack: np.ndarray) -> np.ndarray:
    """NaN-ignoring median over axis 0 (NaN where all are NaN).

    Same result as ``np.nanmedian(stack, axis=0)`` but a sort-based version: ``np.nanmedian``
    falls back to a slow per-slice path (and warns on every all-NaN slice) on panels this size.
    """
    ordered = np.sort(stack, axis=0)  # NaNs sort last
    count = (~np.isnan(stack)).sum(axis=0)
    lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[None], axis=0)[0]
    hi = np.take_along_axis(ordered, count[None] // 2, axis=0)[0]
    return np.where(count > 0, (lo + hi) / 2, np.nan)


def seasonal_naive(rate: np.ndarray, max_weeks: int) -> np.ndarray:
    """Most recent same-weekday-and-hour value at least one week back, per panel cell.

    ``out[c, d, h] = rate[c, d - 7w, h]`` for the smallest ``w`` in ``1..max_weeks`` with data,
    NaN if none: the evaluation baseline ("same hour one week before; where that hour is missing,
    the most recent same weekday and hour before it").
    """
    out = np.full_like(rate, np.nan)
    for w in range(1, max_weeks + 1):
        shifted = _shift_days(rate, 7 * w)
        fill = np.isnan(out)
        out[fill] = shifted[fill]
    return out


@dataclass(frozen=True, eq=False)
class PanelStats:
    """Per-cell quantities computed once per panel.

    A cell's entry may involve that cell's own value (``dev``, ``wow``, ``day_*``) or only older
    data (``profile``, ``last_same``: >= 7 days; ``hour_mean``, ``park_mean``: >= 2 days);
    :func:`build_features` reads each at cells that are old enough for the target.
    """

    profile: np.ndarray  # mean of the last K same weekday-hour values   (C, D, H)
    profile_median: np.ndarray
    last_same: np.ndarray  # seasonal naive                               (C, D, H)
    dev: np.ndarray  # rate - profile (the cell's own profile)           (C, D, H)
    day_dev: np.ndarray  # mean over hours of dev                         (C, D)
    wow: np.ndarray  # rate - last_same: week-over-week change            (C, D, H)
    day_wow: np.ndarray  # mean over hours of wow                         (C, D)
    day_rate: np.ndarray  # mean over hours of rate                       (C, D)
    hour_mean: np.ndarray  # expanding mean rate per hour, data <= d-2    (C, D, H)
    park_mean: np.ndarray  # expanding mean rate, data <= d-2             (C, D)
    holiday: np.ndarray  # (D,)


def _expanding_mean_excl(arr: np.ndarray, lag: int) -> np.ndarray:
    """Mean over days ``<= d - lag`` along axis 1, NaN-ignoring."""
    ok = ~np.isnan(arr)
    total = np.cumsum(np.where(ok, arr, 0.0), axis=1)
    count = np.cumsum(ok, axis=1)
    total = _shift_days(total, lag)
    count = _shift_days(count.astype(float), lag)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def panel_stats(panel: Panel, cfg: FeatureConfig, country: str | None, subdiv: str | None) -> PanelStats:
    """Per-cell statistics of ``panel`` that every target cell's features draw on."""
    rate = panel.rate
    weeks = np.stack([_shift_days(rate, 7 * w) for w in range(1, cfg.profile_weeks + 1)], axis=0)
    profile, _ = _nanmean(weeks, axis=0)
    median = _nanmedian_first_axis(weeks)
    last_same = seasonal_naive(rate, cfg.fallback_weeks)
    dev = rate - profile
    day_dev, _ = _nanmean(dev, axis=2)
    wow = rate - last_same
    day_wow, _ = _nanmean(wow, axis=2)
    day_rate, _ = _nanmean(rate, axis=2)
    hour_mean = _expanding_mean_excl(rate, 2)
    park_mean = _expanding_mean_excl(day_rate, 2)
    holiday = np.zeros(panel.n_days, dtype=float)
    if country:
        dates = panel.dates()
        first, last = dates[0].item().year, dates[-1].item().year
        cal = holidays_lib.country_holidays(country, subdiv=subdiv, years=range(first, last + 1))
        holiday = np.array([d.item() in cal for d in dates], dtype=float)
    return PanelStats(
        profile=profile,
        profile_median=median,
        last_same=last_same,
        dev=dev,
        day_dev=day_dev,
        wow=wow,
        day_wow=day_wow,
        day_rate=day_rate,
        hour_mean=hour_mean,
        park_mean=park_mean,
        holiday=holiday,
    )


@dataclass(frozen=True, eq=False)
class FeatureMatrix:
    """Model inputs for a list of target cells.

    ``X`` has one row per target and columns ``names``. Level-type inputs (lags, profiles) are
    expressed RELATIVE to ``anchor`` so that one model fits car parks of very different levels.
    ``anchor`` is the seasonal-naive value with fallbacks (most recent same weekday-hour within
    ``fallback_weeks``, then same hour yesterday, then the car park's hourly mean), NaN if the car
    park has no usable history. ``profile_anchor`` is the multi-week profile with the same
    fallbacks. ``linear_cols`` indexes the purely relative columns a linear model may use
    (NaN there means "no evidence" and is read as 0). ``baseline`` is the pure seasonal-naive
    value used for evaluation (NaN if none within ``fallback_weeks``).
    """

    X: np.ndarray
    names: tuple[str, ...]
    anchor: np.ndarray
    profile_anchor: np.ndarray
    baseline: np.ndarray
    linear_cols: tuple[int, ...]


def _take(arr: np.ndarray, c: np.ndarray, d: np.ndarray, h: np.ndarray | None = None) -> np.ndarray:
    """Gather ``arr[c, d(, h)]`` with NaN where ``d`` is outside the panel."""
    ok = (d >= 0) & (d < arr.shape[1])
    dc = np.clip(d, 0, arr.shape[1] - 1)
    out = arr[c, dc] if h is None else arr[c, dc, h]
    return np.where(ok, out, np.nan)


def _days_mean(daily: np.ndarray, c: np.ndarray, d: np.ndarray, first: int, count: int) -> np.ndarray:
    """Mean of ``daily[c, d - k]`` for ``k`` in ``first .. first + count - 1`` (NaN-ignoring)."""
    stack = np.stack([_take(daily, c, d - k) for k in range(first, first + count)], axis=1)
    return _nanmean(stack, axis=1)[0]


def build_features(
    panel: Panel,
    c: np.ndarray,
    d: np.ndarray,
    h: np.ndarray,
    *,
    config: FeatureConfig | None = None,
    country: str | None = "GB",
    subdiv: str | None = None,
    extras: Sequence[str] = (),
    stats: PanelStats | None = None,
) -> FeatureMatrix:
    """Features for target cells ``(c[i], d[i], h[i])`` of ``panel`` (integer index arrays).

    Uses only panel cells whose UTC start is <= the target's UTC start - 24 h; see module doc.
    ``extras`` names optional per-hour inputs to include (``"booked_rate"``, ``"price"``), read at
    the target cell itself: they are known in advance (bookings on the books at the origin, the
    published price). ``stats`` may be passed to reuse :func:`panel_stats` across calls.
    """
    cfg = config or FeatureConfig()
    st = stats if stats is not None else panel_stats(panel, cfg, country, subdiv)
    c = np.asarray(c, dtype=np.int64)
    d = np.asarray(d, dtype=np.int64)
    h = np.asarray(h, dtype=np.int64)
    n_days = panel.n_days
    if len(d) and (d.min() < 0 or d.max() >= n_days or h.min() < 0 or h.max() >= HOURS):
        raise ValueError("target cell outside the panel")
    origin = panel.utc[d, h] - ORIGIN_HOURS

    # Same local hour k days back; k = 1 is only allowed if it is really >= 24 h old (DST).
    lags = {}
    for k in cfg.lag_days:
        lag = _take(panel.rate, c, d - k, h)
        if k == 1:
            lag = np.where(panel.utc[np.clip(d - 1, 0, None), h] <= origin, lag, np.nan)
        lags[k] = lag
    lag1 = lags.get(1, np.full(len(c), np.nan))

    last_same = _take(st.last_same, c, d, h)
    profile = _take(st.profile, c, d, h)
    hour_mean = _take(st.hour_mean, c, d, h)
    park_mean = _take(st.park_mean, c, d)
    anchor = last_same.copy()
    for fallback in (lag1, hour_mean, park_mean):
        miss = np.isnan(anchor)
        anchor[miss] = fallback[miss]
    profile_anchor = np.where(np.isnan(profile), anchor, profile)

    cols: dict[str, np.ndarray] = {}
    linear: list[str] = []
    dates = panel.start_day + d
    dow = ((dates.astype(np.int64) + 3) % 7).astype(float)  # 1970-01-01 was a Thursday; Monday = 0
    cols["hour"] = h.astype(float)
    cols["dow"] = dow
    cols["weekend"] = (dow >= 5).astype(float)
    cols["holiday"] = st.holiday[d]
    if cfg.use_season:
        doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64).astype(float)
        cols["doy_sin"] = np.sin(2 * np.pi * doy / 365.25)
        cols["doy_cos"] = np.cos(2 * np.pi * doy / 365.25)

    def add(name: str, values: np.ndarray, *, relative: bool = True) -> None:
        cols[name] = values
        if relative:
            linear.append(name)

    # Levels relative to the anchor: "how does this other estimate disagree with last week?"
    for k, lag in lags.items():
        if k != 7:  # lag7 IS the anchor wherever it exists
            add(f"lag{k}_vs_anchor", lag - anchor)
    add("profile_vs_anchor", profile - anchor)
    add("median_vs_anchor", _take(st.profile_median, c, d, h) - anchor)
    add("hour_mean_vs_anchor", hour_mean - anchor)

    # "Yesterday so far": the previous local day's hours already >= 24 h old at the origin, as
    # change vs. the week before (wow) and vs. the weekly profile (dev). This is the newest
    # evidence of a level shift (weather, events, the run-up to Christmas).
    yd = np.clip(d - 1, 0, None)
    avail = (panel.utc[yd] <= origin[:, None]) & (d >= 1)[:, None]  # (n, 24)
    add("yday_wow", _nanmean(np.where(avail, st.wow[c, yd], np.nan), axis=1)[0])
    add("yday_dev", _nanmean(np.where(avail, st.dev[c, yd], np.nan), axis=1)[0])
    add("lag1_wow", lag1 - _take(st.last_same, c, d - 1, h))
    add("lag1_dev", lag1 - _take(st.profile, c, d - 1, h))
    # Full days d-2 .. d-8 (always >= 24 h old): the last week's level change, and the trend.
    add("d2_wow", _take(st.day_wow, c, d - 2))
    add("week_wow", _days_mean(st.day_wow, c, d, 2, cfg.level_days))
    add("week_dev", _days_mean(st.day_dev, c, d, 2, cfg.level_days))
    add("prev_week_dev", _days_mean(st.day_dev, c, d, 9, cfg.level_days))
    add("trend", _days_mean(st.day_rate, c, d, 2, cfg.level_days) - _days_mean(st.day_rate, c, d, 9, cfg.level_days))
    # Was the anchor itself unusual? If last week's day was above its profile, expect reversion.
    add("anchor_vs_profile", last_same - _take(st.profile, c, d - 7, h))
    add("week_ago_dev", _take(st.dev, c, d - 7, h))
    add("week_ago_day_dev", _take(st.day_dev, c, d - 7))

    # Car park: level and size.
    add("anchor", anchor, relative=False)
    add("park_mean", park_mean, relative=False)
    add("log_capacity", np.log(panel.capacity[c]), relative=False)

    for name in extras:
        source = {"booked_rate": panel.booked, "price": panel.price}[name]
        add(name, _take(source, c, d, h), relative=False)

    names = tuple(cols)
    X = np.column_stack([cols[n] for n in names])
    return FeatureMatrix(
        X=X,
        names=names,
        anchor=anchor,
        profile_anchor=profile_anchor,
        baseline=last_same,
        linear_cols=tuple(names.index(n) for n in linear),
    )
