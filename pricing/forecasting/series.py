"""Hourly occupancy series: the data type shared by the importer, the model and the evaluation.

A :class:`CarParkSeries` holds one car park's hourly history as parallel numpy arrays, because the
model works on whole arrays (a 1,000-car-park forecast must not build millions of Python objects).
:attr:`CarParkSeries.points` gives the same data as a tuple of :class:`HourlyPoint` for callers that
prefer objects.

Time convention: every hour is identified by its start in LOCAL wall-clock time of the car park's
time zone (``local_hour``, naive). The matching UTC start is derived with :mod:`zoneinfo`; for the
ambiguous hour of a DST fall-back day ``fold=0`` (the first, summer-time occurrence) is used, so
readings from both occurrences of 01:00-02:00 end up in one local hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from zoneinfo import ZoneInfo

import numpy as np

__all__ = ["CarParkSeries", "HourlyPoint", "local_hours_to_utc", "to_local_hour"]


@dataclass(frozen=True, slots=True)
class HourlyPoint:
    """One hour of one car park.

    ``local_hour`` is the naive local start of the hour, ``utc_hour`` the tz-aware UTC start,
    ``occupied`` the mean number of parked cars over the readings in ``[hour, hour + 1h)``,
    ``n_readings`` how many readings that mean is made of and ``rate = occupied / capacity``.
    ``booked_rate`` and ``price`` are optional production inputs (None when unknown).
    """

    local_hour: datetime
    utc_hour: datetime
    occupied: float
    n_readings: int
    rate: float
    booked_rate: float | None = None
    price: float | None = None


def to_local_hour(moment: datetime, tz: str) -> datetime:
    """Return the naive local start of the hour containing ``moment``.

    A tz-aware ``moment`` is converted to ``tz``; a naive one is taken as local wall-clock time.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    return moment.replace(minute=0, second=0, microsecond=0)


def local_hours_to_utc(local_hours: np.ndarray, tz: str) -> np.ndarray:
    """Map naive local hour starts (``datetime64[h]``) to UTC hour starts (``datetime64[h]``).

    Exact per hour (``fold=0`` for ambiguous and non-existent local times). The zoneinfo call is
    made once per DISTINCT local hour, so mapping many car parks that share the same hours costs
    no more than mapping one.
    """
    local_hours = np.asarray(local_hours, dtype="datetime64[h]")
    if local_hours.size == 0:
        return local_hours.copy()
    zone = ZoneInfo(tz)
    uniq, inverse = np.unique(local_hours, return_inverse=True)
    offsets = np.empty(uniq.size, dtype="timedelta64[h]")
    for i, value in enumerate(uniq.astype("datetime64[s]").astype(datetime)):
        # Offsets are whole hours in every zone this product targets (UK, EU); minutes would be
        # truncated here, which we accept and document.
        offset = value.replace(tzinfo=zone, fold=0).utcoffset() or timedelta(0)
        offsets[i] = np.timedelta64(int(offset.total_seconds() // 3600), "h")
    return (uniq - offsets)[inverse]


def _as_float_array(values: Sequence[float | Decimal | None] | np.ndarray | None, n: int) -> np.ndarray | None:
    if values is None:
        return None
    # Decimal prices are converted to float for features only; money is never computed here.
    if isinstance(values, np.ndarray):
        arr = values.astype(float)
    else:
        arr = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    if arr.shape != (n,):
        raise ValueError(f"expected {n} values, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class CarParkSeries:
    """Hourly history of one car park, sorted by hour, one entry per local hour.

    Contract: ``local_hour`` is strictly increasing ``datetime64[h]`` (naive local wall clock),
    ``occupied``/``n_readings`` have the same length, ``capacity > 0``. Hours without data are
    simply absent. ``booked_rate`` (bookings on the books AT THE FORECAST ORIGIN, i.e. 24 h before
    the hour, divided by capacity) and ``price`` (hourly price as float) are optional.
    """

    code: str
    capacity: int
    tz: str
    local_hour: np.ndarray
    occupied: np.ndarray
    n_readings: np.ndarray
    booked_rate: np.ndarray | None = None
    price: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.local_hour)
        if self.capacity <= 0:
            raise ValueError(f"{self.code}: capacity must be positive")
        if len(self.occupied) != n or len(self.n_readings) != n:
            raise ValueError(f"{self.code}: arrays differ in length")
        if n > 1 and not bool(np.all(np.diff(self.local_hour.astype("int64")) > 0)):
            raise ValueError(f"{self.code}: local_hour must be strictly increasing")

    @classmethod
    def from_arrays(
        cls,
        code: str,
        capacity: int,
        tz: str,
        local_hour: Sequence[datetime] | np.ndarray,
        occupied: Sequence[float] | np.ndarray,
        n_readings: Sequence[int] | np.ndarray | None = None,
        *,
        booked_rate: Sequence[float | None] | np.ndarray | None = None,
        price: Sequence[float | Decimal | None] | np.ndarray | None = None,
    ) -> CarParkSeries:
        """Build a series from plain sequences (e.g. rows from the database), sorting by hour.

        ``local_hour`` may hold naive local datetimes or ``datetime64``; tz-aware datetimes are
        converted to ``tz`` first. ``n_readings`` defaults to 1 per hour.
        """
        if isinstance(local_hour, np.ndarray):
            hours = local_hour.astype("datetime64[h]")
        else:
            hours = np.array([np.datetime64(to_local_hour(h, tz), "h") for h in local_hour], dtype="datetime64[h]")
        n = len(hours)
        occ = np.asarray(occupied, dtype=float)
        counts = np.ones(n, dtype=np.int64) if n_readings is None else np.asarray(n_readings, dtype=np.int64)
        booked = _as_float_array(booked_rate, n)
        prices = _as_float_array(price, n)
        order = np.argsort(hours, kind="stable")
        return cls(
            code=code,
            capacity=int(capacity),
            tz=tz,
            local_hour=hours[order],
            occupied=occ[order],
            n_readings=counts[order],
            booked_rate=None if booked is None else booked[order],
            price=None if prices is None else prices[order],
        )

    @property
    def rate(self) -> np.ndarray:
        """Occupancy rate per hour (occupied / capacity)."""
        return self.occupied / self.capacity

    @cached_property
    def utc_hour(self) -> np.ndarray:
        """UTC start of each hour as ``datetime64[h]`` (fold=0 for ambiguous local times)."""
        return local_hours_to_utc(self.local_hour, self.tz)

    @property
    def points(self) -> tuple[HourlyPoint, ...]:
        """The hours as :class:`HourlyPoint` objects (local naive start, UTC aware start, ...)."""
        local = self.local_hour.astype("datetime64[s]").astype(datetime)
        utc = self.utc_hour.astype("datetime64[s]").astype(datetime)
        rates = self.rate
        return tuple(
            HourlyPoint(
                local_hour=local[i],
                utc_hour=utc[i].replace(tzinfo=UTC),
                occupied=float(self.occupied[i]),
                n_readings=int(self.n_readings[i]),
                rate=float(rates[i]),
                booked_rate=None if self.booked_rate is None else _none_if_nan(self.booked_rate[i]),
                price=None if self.price is None else _none_if_nan(self.price[i]),
            )
            for i in range(len(self.local_hour))
        )

    def dates(self) -> np.ndarray:
        """Distinct local dates (``datetime64[D]``) that have at least one hour of data."""
        return np.unique(self.local_hour.astype("datetime64[D]"))

    def slice(self, start: datetime | None = None, end: datetime | None = None) -> CarParkSeries:
        """Hours with ``start <= local_hour < end`` (naive local bounds; None = open)."""
        mask = np.ones(len(self.local_hour), dtype=bool)
        if start is not None:
            mask &= self.local_hour >= np.datetime64(start, "h")
        if end is not None:
            mask &= self.local_hour < np.datetime64(end, "h")
        return CarParkSeries(
            code=self.code,
            capacity=self.capacity,
            tz=self.tz,
            local_hour=self.local_hour[mask],
            occupied=self.occupied[mask],
            n_readings=self.n_readings[mask],
            booked_rate=None if self.booked_rate is None else self.booked_rate[mask],
            price=None if self.price is None else self.price[mask],
        )


def _none_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
