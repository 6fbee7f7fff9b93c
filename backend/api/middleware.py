"""Request ids: accepted from a trusted-looking ``X-Request-ID`` header or generated."""

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from backend.core.logging import set_request_id

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    header = "X-Request-ID"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(self.header, "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        # Not reset on the way out: Django logs 4xx/5xx responses after the middleware chain
        # returns, and those lines must carry the id too. The next request sets its own.
        set_request_id(request_id)
        response = self.get_response(request)
        response[self.header] = request_id
        return response
