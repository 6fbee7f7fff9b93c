"""The embedded default runs periodic work for real: a Celery worker with beat on kombu's filesystem broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_worker_with_beat_runs_scheduled_tasks_without_redis(tmp_path: Path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_TESTING", "CELERY_TASK_ALWAYS_EAGER")
    }
    env.update(VAR_DIR=str(tmp_path), DJANGO_TESTING="0", CELERY_HEARTBEAT_SECONDS="2")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    log = (tmp_path / "celery.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "backend", "worker", "--beat", "--concurrency=1", "--loglevel=INFO",
         f"--schedule={tmp_path / 'beat-schedule'}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    heartbeat = tmp_path / "celery-heartbeat"
    try:
        deadline = time.monotonic() + 90
        while not heartbeat.exists() and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.5)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        log.close()
    output = (tmp_path / "celery.log").read_text()
    assert heartbeat.exists(), f"no heartbeat from the beat-scheduled task; worker log:\n{output[-3000:]}"
    assert "filesystem" in output
    assert "backend.core.tasks.heartbeat" in output
    assert list((tmp_path / "celery-broker").iterdir()) == [], "the broker's queue was drained by the worker"
