"""Charts operators and marketing look at rather than read (PNG, rendered on the server)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from backend.carparks.models import CarPark

# The forecast rows' occupancy columns, how each is drawn.
OCCUPANCY_KEYS: dict[str, tuple[str, dict[str, Any]]] = {
    "forecast_occupancy": ("forecast at the reference rate", {"color": "tab:blue", "lw": 1.2, "ls": "--"}),
    "predicted_occupancy_at_rate": ("forecast at the published rate", {"color": "tab:blue", "lw": 1.6}),
    "actual_occupancy": ("actual", {"color": "black", "lw": 1.6, "marker": ".", "ms": 3}),
}


def forecast_png(
    car_park: CarPark,
    rows: Sequence[dict[str, Any]],
    start: datetime,
    end: datetime,
    band: tuple[Decimal, Decimal] | None = None,
) -> bytes:
    """Occupancy forecast against what happened, above the hourly rate, in the car park's local time.

    ``rows`` are the forecast API's hours (``pricing.api.views.forecast_rows``): occupancy as a
    share of capacity, the rate as a decimal string, or None where an hour has no value. ``band``
    is the rate rule's target band (shares of capacity), shaded behind the occupancy.
    """
    # matplotlib lazily and through the Agg canvas (no pyplot): no process-wide backend state,
    # safe in a threaded web worker.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    zone = ZoneInfo(car_park.timezone)
    fig = Figure(figsize=(11, 5.5))
    FigureCanvasAgg(fig)
    occupancy_ax, rate_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})

    moments = [row["hour_start"].astimezone(zone) for row in rows]

    def series(key: str, scale: float = 1.0) -> list[float]:
        # NaN, not a skipped point: a line breaks where an hour has no value instead of bridging it.
        return [math.nan if row[key] is None else float(row[key]) * scale for row in rows]

    occupancy = {key: series(key, 100.0) for key in OCCUPANCY_KEYS}
    for key, (label, style) in OCCUPANCY_KEYS.items():
        occupancy_ax.plot(moments, occupancy[key], label=label, **style)
    if band is not None:
        occupancy_ax.axhspan(
            float(band[0]) * 100, float(band[1]) * 100, color="tab:green", alpha=0.1, label="target band"
        )
    shown = [value for values in occupancy.values() for value in values if not math.isnan(value)]
    occupancy_ax.set_ylim(0, max([105.0, *(value * 1.05 for value in shown)]))
    occupancy_ax.set_ylabel("occupancy, % of bays")
    occupancy_ax.grid(alpha=0.3)
    occupancy_ax.legend(fontsize=8, loc="upper left")

    if rows:  # a step holds each rate for its hour, the last one included
        rates = series("rate")
        rate_ax.step(
            [*moments, moments[-1] + timedelta(hours=1)], [*rates, rates[-1]], where="post", color="tab:orange", lw=1.4
        )
    rate_ax.set_ylabel(f"rate, {car_park.currency}/h")
    rate_ax.set_ylim(bottom=0)
    rate_ax.grid(alpha=0.3)

    locator = AutoDateLocator(tz=zone)
    rate_ax.xaxis.set_major_locator(locator)
    rate_ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=zone))
    rate_ax.set_xlim(start.astimezone(zone), end.astimezone(zone))
    if not rows:
        occupancy_ax.text(
            0.5, 0.5, "No forecast or occupancy in this window", ha="center", transform=occupancy_ax.transAxes
        )
    fig.suptitle(
        f"{car_park.name}: forecast and actual occupancy, hourly rate "
        f"({start.astimezone(zone):%d %b %H:%M} to {end.astimezone(zone):%d %b %H:%M} {car_park.timezone})",
        fontsize=10,
    )
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    return out.getvalue()
