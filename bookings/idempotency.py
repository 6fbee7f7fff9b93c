"""``Idempotency-Key`` for unsafe requests: one execution per (user, key), its answer replayed.

The first request claims the key by inserting a row (committed at once, so concurrent repeats
see it); repeats of the same request wait for its answer for a few seconds and replay it, else get
409 with ``Retry-After``. The same key with a different method, path or body is a client bug: 422.
A request that crashes (500) releases its key so that a retry can run it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.http import HttpResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from backend.accounts.permissions import acting_user
from backend.api.errors import Conflict, InvalidInput, Unprocessable, problem_exception_handler
from backend.core import clock
from bookings.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
POLL_SECONDS = 0.05
REPLAYED_HEADERS = ("Location", "Retry-After")
# A claim older than this whose request never finished belongs to a crashed process.
STALE_CLAIM = timedelta(minutes=2)


class KeyInUse(Conflict):
    code = "idempotency_key_in_use"


class KeyReused(Unprocessable):
    code = "idempotency_key_reused"


def _request_hash(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _key_of(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(HEADER, f"Use 1 to {MAX_KEY_LENGTH} printable characters.", code="invalid_idempotency_key")
    return key


def _replay(record: IdempotencyRecord) -> HttpResponse:
    content_type = "application/problem+json" if (record.response_status or 500) >= 400 else "application/json"
    response = HttpResponse(record.response_body, status=record.response_status, content_type=content_type)
    for name, value in {**record.response_headers, "Idempotent-Replayed": "true"}.items():
        response[name] = value
    return response


def _claim(request: Request, key: str, request_hash: str) -> IdempotencyRecord | None:
    """Insert the claim row; None when another request holds the key.

    Outside a transaction the INSERT commits on its own (one round trip, no BEGIN/COMMIT); inside
    one, a savepoint keeps a duplicate key from breaking the caller's transaction."""
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            return IdempotencyRecord.objects.create(
                user=acting_user(request),
                key=key,
                method=request.method or "",
                path=request.path,
                request_hash=request_hash,
            )
    except IntegrityError:
        return None


def _wait_for_answer(request: Request, key: str, request_hash: str) -> HttpResponse | None:
    """Replay the first request's answer once it is there; None if the key became free again."""
    deadline = time.monotonic() + settings.IDEMPOTENCY_WAIT_SECONDS
    while True:
        record = IdempotencyRecord.objects.filter(user=acting_user(request), key=key).first()
        if record is None:
            return None
        if record.request_hash != request_hash:
            raise KeyReused(f"This {HEADER} was used for a different request; use a new key for a new request.")
        if record.is_complete:
            return _replay(record)
        if clock.now() - record.created_at > STALE_CLAIM:
            IdempotencyRecord.objects.filter(pk=record.pk, is_complete=False).delete()
            return None
        if time.monotonic() >= deadline:
            raise KeyInUse(
                "A request with this key is still being processed; retry shortly.", headers={"Retry-After": "1"}
            )
        time.sleep(POLL_SECONDS)


def _store(record: IdempotencyRecord, response: Response) -> None:
    record.response_status = response.status_code
    record.response_body = JSONRenderer().render(response.data).decode() if response.data is not None else ""
    record.response_headers = {name: response[name] for name in REPLAYED_HEADERS if response.has_header(name)}
    record.is_complete = True
    record.save(update_fields=["response_status", "response_body", "response_headers", "is_complete"])


def run_idempotently(request: Request, handler: Callable[[], Response], context: dict[str, Any]) -> HttpResponse:
    """Run ``handler`` once per key; without a key, just run it."""
    key = _key_of(request)
    if key is None:
        return handler()
    request_hash = _request_hash(request)
    while True:
        record = _claim(request, key, request_hash)
        if record is not None:
            break
        replayed = _wait_for_answer(request, key, request_hash)
        if replayed is not None:
            return replayed
    try:
        response = handler()
    except Exception as exc:
        refusal = problem_exception_handler(exc, context)
        if refusal is None or refusal.status_code >= 500:
            record.delete()  # the request did not happen: let a retry run it
            raise
        response = refusal
    _store(record, response)
    return response
