"""The one clock services read, so tests can move time (time-machine) in one place."""

from datetime import UTC, datetime

from django.utils import timezone


def now() -> datetime:
    """Return the current time, tz-aware in UTC."""
    return timezone.now()


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z``, the same form as every other time in the API."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
