"""The one clock services read, so tests can move time (time-machine) in one place."""

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """Return the current time, tz-aware in UTC."""
    return timezone.now()
