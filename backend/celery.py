"""The Celery application: Redis when ``REDIS_URL`` is set, kombu's filesystem broker otherwise."""

import os

from celery import Celery
from celery.signals import before_task_publish, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
# Before numpy/scikit-learn load: a worker process per core already uses every core, and
# oversubscribed BLAS/OpenMP threads made model fits several times slower on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

app = Celery("backend")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def _carry_request_id(headers: dict | None = None, **_: object) -> None:
    # A task queued during a request logs under that request's id, so one id follows the work.
    from backend.core.logging import current_request_id

    if headers is not None:
        headers.setdefault("request_id", current_request_id())


@task_prerun.connect
def _adopt_request_id(task: object = None, **_: object) -> None:
    from backend.core.logging import set_request_id

    request = getattr(task, "request", None)
    set_request_id(getattr(request, "request_id", None) or "-")
