#!/usr/bin/env bash
# The embedded default on one machine: Django's server plus one Celery worker that also runs beat,
# on kombu's filesystem broker (no Redis needed). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
mkdir -p var

"$BIN/celery" -A backend worker --beat --loglevel=INFO --concurrency=1 \
  --schedule=var/celerybeat-schedule >var/celery.log 2>&1 &
CELERY_PID=$!
trap 'kill "$CELERY_PID" 2>/dev/null || true; wait "$CELERY_PID" 2>/dev/null || true' EXIT INT TERM
echo "Celery worker + beat running (pid $CELERY_PID, log var/celery.log)"
echo "Serving on http://$HOST:$PORT  (API docs: http://$HOST:$PORT/api/docs/)"
"$BIN/python" manage.py runserver "$HOST:$PORT" --noreload
