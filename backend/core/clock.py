"""The one clock services read, so tests can move time (time-machine) in one place."""

from datetime import UTC, datetime

from django.utils import timezone

# Every instant the API accepts lies in these years: nothing the platform does is earlier or later,
# and at the edges of Python's range a conversion to UTC or a step of an hour would overflow.
SUPPORTED_YEARS = range(2000, 2100)
SUPPORTED_RANGE_TEXT = f"Use a date from {SUPPORTED_YEARS.start} to {SUPPORTED_YEARS.stop - 1}."


def is_supported(moment: datetime) -> bool:
    """The year as written (before any conversion, which could itself overflow) is supported."""
    return moment.year in SUPPORTED_YEARS


def now() -> datetime:
    """Return the current time, tz-aware in UTC."""
    return timezone.now()


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z``, the same form as every other time in the API."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
