"""Platform-wide periodic work."""

import logging
from pathlib import Path

from celery import shared_task
from django.conf import settings

from backend.core import clock

logger = logging.getLogger(__name__)


def heartbeat_path() -> Path:
    return settings.VAR_DIR / "celery-heartbeat"


@shared_task
def heartbeat() -> str:
    """Record that a worker ran a beat-scheduled task; ``/api/v1/health`` reports its age.

    A file rather than the cache: on the embedded default the cache is per process.
    """
    stamp = clock.now().isoformat()
    heartbeat_path().write_text(stamp)
    logger.info("celery heartbeat %s", stamp)
    return stamp
