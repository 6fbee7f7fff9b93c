"""A local, in-process imitation of the parts of Stripe's API the payment provider uses.

It speaks HTTP on 127.0.0.1 (random port) so the real ``stripe`` library, its form encoding, headers,
retries and error parsing are exercised end to end, without any network access::

    with StripeStub() as stub:
        provider = StripeProvider(stub.api_key, api_base=stub.url)
        provider.create_payment(...)
        assert stub.requests[-1].params["amount"] == "2500"

Endpoints: ``POST /v1/payment_intents``, ``GET /v1/payment_intents/{id}``,
``POST /v1/payment_intents/{id}/cancel``, ``POST /v1/refunds``.

What it checks, like Stripe (or stricter):

* ``Authorization: Bearer <key>`` (or Basic ``<key>:``) must carry ``api_key`` -> else 401.
* every POST must carry an ``Idempotency-Key`` header -> else 400 (Stripe would invent one; the stub
  insists so tests prove our key is sent).
* ``amount`` must be a positive integer (``parameter_invalid_integer`` / ``amount_too_small``, with
  Stripe's per-currency minimum charge for a few currencies) and ``currency`` three lower-case letters.
* unknown parameters are rejected (``parameter_unknown``).
* idempotency: same key + same method/path/params replays the stored response (header
  ``Idempotent-Replayed: true``); same key with anything different -> 400 ``idempotency_error``.
  Like Stripe, responses to requests that failed validation are not stored.

Test payment methods (for ``confirm=true``): ``pm_card_visa`` succeeds, ``pm_card_chargeDeclined``
(-> ``generic_decline``) and ``pm_card_chargeDeclinedInsufficientFunds`` (-> ``insufficient_funds``)
give 402 ``card_error``/``card_declined``; ``pm_card_authenticationRequired`` gives 402
``authentication_required`` off-session and ``requires_action`` on-session.

Fault injection for the next N requests, applied *before* the request is executed (so nothing is
stored and a retry with the same key really creates the object): :meth:`StripeStub.fail_next`
(HTTP 500/503/429...), :meth:`StripeStub.drop_next` (connection closed without a response);
:meth:`StripeStub.delay_next` executes the request and then stalls the response (client timeout
after the server did the work: the retry must replay it).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

logger = logging.getLogger(__name__)

__all__ = ["StripeStub", "StubRequest"]

DEFAULT_API_KEY = "sk_test_stub_0123456789"

# Stripe's documented minimum charge amounts (minor units) for a few currencies; others: 1.
MINIMUM_CHARGE_MINOR = {"usd": 50, "eur": 50, "gbp": 30, "chf": 50, "cad": 50, "aud": 50, "jpy": 50}

TEST_PAYMENT_METHODS = {
    "pm_card_visa": None,
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_authenticationRequired": (
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
}

_PI_CREATE_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "metadata",
        "automatic_payment_methods",
        "payment_method_types",
        "customer",
        "setup_future_usage",
        "payment_method",
        "confirm",
        "off_session",
        "description",
        "capture_method",
        "receipt_email",
        "statement_descriptor_suffix",
        "return_url",
        "expand",
    }
)
_PI_RETRIEVE_PARAMS = frozenset({"client_secret", "expand"})
_PI_CANCEL_PARAMS = frozenset({"cancellation_reason", "expand"})
_REFUND_CREATE_PARAMS = frozenset({"payment_intent", "charge", "amount", "reason", "metadata", "expand"})
_CANCELABLE = frozenset(
    {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action", "processing"}
)
_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PI_PATH_RE = re.compile(r"^/v1/payment_intents/([A-Za-z0-9_]+)$")
_PI_CANCEL_PATH_RE = re.compile(r"^/v1/payment_intents/([A-Za-z0-9_]+)/cancel$")


@dataclass(frozen=True)
class StubRequest:
    """One HTTP request as the stub received it."""

    method: str
    path: str
    params: dict[str, Any]  # form/query decoded and nested: {"metadata": {"booking_id": "42"}}
    form: dict[str, str]  # flat, exactly as sent: {"metadata[booking_id]": "42"}
    idempotency_key: str | None
    api_key: str | None
    auth_scheme: str | None  # "Bearer" | "Basic" | None
    headers: dict[str, str]  # lower-cased names
    status: int | None  # HTTP status answered; None when the connection was dropped
    replayed: bool = False  # True when answered from the idempotency store
    fault: str | None = None  # "status:500", "drop", "delay:1.0" when a fault was injected


@dataclass
class _Fault:
    kind: str  # "status" | "drop" | "delay"
    status: int = 500
    seconds: float = 0.0

    def label(self) -> str:
        if self.kind == "status":
            return f"status:{self.status}"
        if self.kind == "delay":
            return f"delay:{self.seconds}"
        return self.kind


class _StubError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        store: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.store = store  # whether the idempotency layer saves this response (endpoint executed)
        error: dict[str, Any] = {"type": type_, "message": message}
        if code is not None:
            error["code"] = code
        if param is not None:
            error["param"] = param
        error.update(extra or {})
        self.body: dict[str, Any] = {"error": error}


@dataclass
class _Stored:
    fingerprint: tuple[Any, ...]
    status: int
    body: dict[str, Any]


@dataclass
class _State:
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunded: dict[str, int] = field(default_factory=dict)  # pi id -> refunded minor units
    idempotency: dict[tuple[str, str], _Stored] = field(default_factory=dict)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _nest(form: dict[str, str]) -> dict[str, Any]:
    """``{"metadata[a]": "1", "types[0]": "card"}`` -> ``{"metadata": {"a": "1"}, "types": ["card"]}``."""
    root: dict[str, Any] = {}
    for flat_key, value in form.items():
        match = _KEY_RE.match(flat_key)
        if match is None:
            raise _StubError(400, f"Invalid parameter name: {flat_key}", code="parameter_unknown")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise _StubError(400, f"Invalid parameter nesting: {flat_key}", param=flat_key)
            node = child
        if parts[-1] in node:
            raise _StubError(400, f"Duplicate parameter: {flat_key}", param=flat_key)
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        indexes = sorted(int(k) for k in converted)
        if indexes == list(range(len(indexes))):
            return [converted[str(i)] for i in indexes]
    return converted


def _check_unknown(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise _StubError(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


def _parse_integer(params: dict[str, Any], name: str) -> int:
    raw = params.get(name)
    if not isinstance(raw, str) or not re.fullmatch(r"-?[0-9]+", raw):
        raise _StubError(400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name)
    return int(raw)


def _parse_amount(params: dict[str, Any], currency: str) -> int:
    if "amount" not in params:
        raise _StubError(400, "Missing required param: amount.", code="parameter_missing", param="amount")
    amount = _parse_integer(params, "amount")
    minimum = MINIMUM_CHARGE_MINOR.get(currency, 1)
    if amount < minimum:
        raise _StubError(
            400,
            f"Amount must be at least {minimum} {currency} minor units",
            code="amount_too_small",
            param="amount",
        )
    if amount > 99_999_999:
        raise _StubError(400, "Amount must be no more than 99999999", code="amount_too_large", param="amount")
    return amount


def _parse_currency(params: dict[str, Any]) -> str:
    if "currency" not in params:
        raise _StubError(400, "Missing required param: currency.", code="parameter_missing", param="currency")
    currency = params["currency"]
    if not isinstance(currency, str) or not re.fullmatch(r"[a-z]{3}", currency):
        # Real Stripe answers invalid currencies with this message and no `code`.
        raise _StubError(
            400,
            f"Invalid currency: {currency}. The stub accepts 3-letter lower-case ISO codes.",
            param="currency",
        )
    return currency


def _parse_bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise _StubError(400, f"Invalid boolean: {raw}", code="parameter_invalid_boolean", param=name)
    return raw == "true"


def _parse_metadata(params: dict[str, Any]) -> dict[str, str]:
    metadata = params.get("metadata", {})
    if metadata == "":
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _StubError(400, "Invalid metadata: must be a hash of strings", param="metadata")
    if len(metadata) > 50:
        raise _StubError(400, "Invalid metadata: at most 50 keys", param="metadata")
    for key, value in metadata.items():
        if len(key) > 40 or len(value) > 500:
            raise _StubError(400, f"Invalid metadata[{key}]: key <= 40, value <= 500 chars", param="metadata")
    return dict(metadata)


class StripeStub:
    """Threaded local HTTP server imitating Stripe (see module docstring)."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, *, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self._host = host
        self._lock = threading.RLock()  # re-entrant: the idempotency layer wraps the resources
        self._state = _State()
        self._faults: deque[_Fault] = deque()
        self._requests: list[StubRequest] = []
        self.internal_errors: list[BaseException] = []  # bugs in the stub itself; tests may assert empty
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StripeStub:
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"stub": self})
        server = _Server((self._host, 0), handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="stripe-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> StripeStub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("StripeStub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- inspection ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[StubRequest]:
        """Snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[StubRequest]:
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    @property
    def payment_intents(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(self._state.payment_intents))

    @property
    def refunds(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(self._state.refunds))

    # -- simulation hooks ------------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status`` (500/503: ``api_error``; 429: rate limit)
        without executing them."""
        with self._lock:
            self._faults.extend(_Fault("status", status=status) for _ in range(count))

    def drop_next(self, count: int = 1) -> None:
        """Close the connection of the next ``count`` requests without answering (not executed)."""
        with self._lock:
            self._faults.extend(_Fault("drop") for _ in range(count))

    def delay_next(self, count: int = 1, *, seconds: float) -> None:
        """Execute the next ``count`` requests, then wait ``seconds`` before answering."""
        with self._lock:
            self._faults.extend(_Fault("delay", seconds=seconds) for _ in range(count))

    def confirm_payment_intent(self, payment_intent_id: str, payment_method: str = "pm_card_visa") -> str:
        """Simulate the customer confirming in the browser (Stripe.js). Returns the new status."""
        with self._lock:
            pi = self._state.payment_intents[payment_intent_id]
            with contextlib.suppress(_StubError):  # a decline is recorded on the PaymentIntent
                self._confirm(pi, payment_method, off_session=False)
            return str(pi["status"])

    # -- request processing (called by the handler) ------------------------------------------------

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, request: StubRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _process(
        self, method: str, path: str, form: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], bool, dict[str, Any], str | None, str | None]:
        """Return (status, body, replayed, nested params, api key, auth scheme)."""
        api_key, scheme = _parse_auth(headers.get("authorization"))
        try:
            params = _nest(form)
        except _StubError as err:
            return err.status, err.body, False, {}, api_key, scheme
        try:
            self._authenticate(api_key)
            key = headers.get("idempotency-key")
            if method == "POST" and not key:
                raise _StubError(
                    400,
                    "StripeStub requires an Idempotency-Key header on every POST request.",
                    code="idempotency_key_missing",
                )
            if method != "POST":
                return 200, self._route(method, path, params), False, params, api_key, scheme
            assert key is not None
            return (*self._idempotent(str(api_key), key, method, path, form, params), params, api_key, scheme)
        except _StubError as err:
            return err.status, err.body, False, params, api_key, scheme

    def _authenticate(self, api_key: str | None) -> None:
        if not api_key:
            raise _StubError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if api_key != self.api_key:
            raise _StubError(401, f"Invalid API Key provided: {api_key[:8]}********{api_key[-4:]}")

    def _idempotent(
        self, api_key: str, key: str, method: str, path: str, form: dict[str, str], params: dict[str, Any]
    ) -> tuple[int, dict[str, Any], bool]:
        fingerprint = (method, path, tuple(sorted(form.items())))
        with self._lock:
            stored = self._state.idempotency.get((api_key, key))
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    raise _StubError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they "
                        f"were first used with. Try using a key other than '{key}' if you meant to "
                        "execute a different request.",
                        type_="idempotency_error",
                    )
                return stored.status, json.loads(json.dumps(stored.body)), True
            try:
                status, body = 200, self._route(method, path, params)
            except _StubError as err:
                if not err.store:
                    raise
                status, body = err.status, err.body
            self._state.idempotency[(api_key, key)] = _Stored(fingerprint, status, json.loads(json.dumps(body)))
            return status, body, False

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "POST" and path == "/v1/payment_intents":
            return self._create_payment_intent(params)
        if method == "POST" and path == "/v1/refunds":
            return self._create_refund(params)
        if method == "GET" and (match := _PI_PATH_RE.match(path)):
            _check_unknown(params, _PI_RETRIEVE_PARAMS)
            return self._get_pi(match.group(1))
        if method == "POST" and (match := _PI_CANCEL_PATH_RE.match(path)):
            return self._cancel_payment_intent(match.group(1), params)
        raise _StubError(404, f"Unrecognized request URL ({method}: {path}).")

    # -- resources -------------------------------------------------------------------------------

    def _get_pi(self, pi_id: str) -> dict[str, Any]:
        with self._lock:
            pi = self._state.payment_intents.get(pi_id)
            if pi is None:
                raise _StubError(404, f"No such payment_intent: '{pi_id}'", code="resource_missing", param="intent")
            return json.loads(json.dumps(pi))

    def _create_payment_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_unknown(params, _PI_CREATE_PARAMS)
        currency = _parse_currency(params)
        amount = _parse_amount(params, currency)
        metadata = _parse_metadata(params)
        confirm = _parse_bool(params, "confirm")
        off_session = _parse_bool(params, "off_session")
        apm = params.get("automatic_payment_methods")
        types = params.get("payment_method_types")
        if apm is not None and types is not None:
            raise _StubError(
                400,
                "You may only specify one of these parameters: automatic_payment_methods, payment_method_types.",
                code="parameters_exclusive",
            )
        if apm is not None:
            if not isinstance(apm, dict) or set(apm) - {"enabled", "allow_redirects"}:
                raise _StubError(400, "Invalid automatic_payment_methods", param="automatic_payment_methods")
            _parse_bool(apm, "enabled")
        if types is not None and (not isinstance(types, list) or not all(t == "card" for t in types)):
            raise _StubError(400, f"Invalid payment_method_types: {types}", param="payment_method_types")
        sfu = params.get("setup_future_usage")
        if sfu is not None and sfu not in ("on_session", "off_session"):
            raise _StubError(400, f"Invalid setup_future_usage: {sfu}", param="setup_future_usage")
        customer = params.get("customer")
        if customer is not None and not (isinstance(customer, str) and customer.startswith("cus_")):
            raise _StubError(400, f"No such customer: '{customer}'", code="resource_missing", param="customer")
        payment_method = params.get("payment_method")
        if payment_method is not None and payment_method not in TEST_PAYMENT_METHODS:
            raise _StubError(
                400,
                f"No such PaymentMethod: '{payment_method}'",
                code="resource_missing",
                param="payment_method",
            )
        if off_session and not confirm:
            raise _StubError(400, "off_session can only be used with confirm=true", param="off_session")
        if confirm and payment_method is None:
            raise _StubError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )

        pi_id = _new_id("pi")
        # Recent API versions enable automatic payment methods when neither parameter is given.
        apm_enabled = _parse_bool(apm, "enabled") if apm is not None else types is None
        pi: dict[str, Any] = {
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "always"} if apm_enabled else None,
            "cancellation_reason": None,
            "canceled_at": None,
            "capture_method": params.get("capture_method", "automatic"),
            "client_secret": f"{pi_id}_secret_{secrets.token_hex(12)}",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "currency": currency,
            "customer": customer,
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": metadata,
            "payment_method": payment_method,
            "payment_method_types": types or ["card"],
            "setup_future_usage": sfu,
            "status": "requires_payment_method" if payment_method is None else "requires_confirmation",
        }
        with self._lock:
            self._state.payment_intents[pi_id] = pi
            if confirm:
                assert payment_method is not None
                self._confirm(pi, payment_method, off_session=off_session)
            return json.loads(json.dumps(pi))

    def _confirm(self, pi: dict[str, Any], payment_method: str, *, off_session: bool) -> None:
        """Caller holds the lock. Mutates ``pi``; raises a stored 402 ``_StubError`` on declines."""
        if pi["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise _StubError(
                400,
                f"This PaymentIntent's status is {pi['status']} and it cannot be confirmed.",
                code="payment_intent_unexpected_state",
            )
        if payment_method not in TEST_PAYMENT_METHODS:
            raise _StubError(
                400, f"No such PaymentMethod: '{payment_method}'", code="resource_missing", param="payment_method"
            )
        pi["payment_method"] = payment_method
        outcome = TEST_PAYMENT_METHODS[payment_method]
        if payment_method == "pm_card_authenticationRequired" and not off_session:
            pi["status"] = "requires_action"
            return
        charge_id = _new_id("ch")
        if outcome is None:
            pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=charge_id)
            return
        code, decline_code, message = outcome
        error = {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": message,
            "charge": charge_id,
        }
        pi.update(status="requires_payment_method", latest_charge=charge_id, last_payment_error=error)
        raise _StubError(
            402,
            message,
            type_="card_error",
            code=code,
            store=True,
            extra={
                "decline_code": decline_code,
                "charge": charge_id,
                "payment_intent": json.loads(json.dumps(pi)),
                "payment_method": {"id": payment_method, "object": "payment_method", "type": "card"},
            },
        )

    def _cancel_payment_intent(self, pi_id: str, params: dict[str, Any]) -> dict[str, Any]:
        _check_unknown(params, _PI_CANCEL_PARAMS)
        reason = params.get("cancellation_reason")
        if reason is not None and reason not in (
            "duplicate",
            "fraudulent",
            "requested_by_customer",
            "abandoned",
        ):
            raise _StubError(400, f"Invalid cancellation_reason: {reason}", param="cancellation_reason")
        with self._lock:
            pi = self._state.payment_intents.get(pi_id)
            if pi is None:
                raise _StubError(404, f"No such payment_intent: '{pi_id}'", code="resource_missing", param="intent")
            if pi["status"] not in _CANCELABLE:
                raise _StubError(
                    400,
                    f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}.",
                    code="payment_intent_unexpected_state",
                    store=True,
                )
            pi.update(status="canceled", canceled_at=int(time.time()), cancellation_reason=reason)
            return json.loads(json.dumps(pi))

    def _create_refund(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_unknown(params, _REFUND_CREATE_PARAMS)
        metadata = _parse_metadata(params)
        reason = params.get("reason")
        if reason is not None and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
            raise _StubError(400, f"Invalid reason: {reason}", param="reason")
        with self._lock:
            pi_id = params.get("payment_intent")
            charge = params.get("charge")
            if pi_id is None and charge is not None:
                pi_id = next(
                    (p["id"] for p in self._state.payment_intents.values() if p["latest_charge"] == charge),
                    None,
                )
                if pi_id is None:
                    raise _StubError(400, f"No such charge: '{charge}'", code="resource_missing", param="charge")
            if pi_id is None:
                raise _StubError(
                    400,
                    "One of the following params should be provided for this request: payment_intent or charge.",
                    code="parameter_missing",
                )
            pi = self._state.payment_intents.get(pi_id)
            if pi is None:
                raise _StubError(
                    400, f"No such payment_intent: '{pi_id}'", code="resource_missing", param="payment_intent"
                )
            if pi["status"] != "succeeded":
                raise _StubError(
                    400,
                    f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                    code="payment_intent_unexpected_state",
                    param="payment_intent",
                )
            remaining = pi["amount_received"] - self._state.refunded.get(pi_id, 0)
            if remaining <= 0:
                raise _StubError(
                    400, f"Charge {pi['latest_charge']} has already been refunded.", code="charge_already_refunded"
                )
            amount = _parse_integer(params, "amount") if "amount" in params else remaining
            if amount <= 0:
                raise _StubError(400, "Amount must be at least 1", code="amount_too_small", param="amount")
            if amount > remaining:
                raise _StubError(
                    400,
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
                    code="amount_too_large",
                    param="amount",
                )
            refund = {
                "id": _new_id("re"),
                "object": "refund",
                "amount": amount,
                "charge": pi["latest_charge"],
                "created": int(time.time()),
                "currency": pi["currency"],
                "metadata": metadata,
                "payment_intent": pi_id,
                "reason": reason,
                "status": "succeeded",
            }
            self._state.refunds[refund["id"]] = refund
            self._state.refunded[pi_id] = self._state.refunded.get(pi_id, 0) + amount
            return json.loads(json.dumps(refund))


def _parse_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header:
        return None, None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None, "Bearer"
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, "Basic"
        return decoded.partition(":")[0] or None, "Basic"
    return None, scheme or None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, dropped connections) are expected here; stay quiet.
        logger.debug("stripe stub connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    stub: StripeStub
    server_version = "StripeStub/1.0"
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("stripe stub: " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        stub = self.stub
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        raw_body = self.rfile.read(length).decode("utf-8") if length else ""
        raw_form = split.query if method in ("GET", "DELETE") else raw_body
        pairs = parse_qsl(raw_form, keep_blank_values=True)
        form = dict(pairs)
        api_key, scheme = _parse_auth(headers.get("authorization"))
        fault = stub._take_fault()

        def record(status: int | None, params: dict[str, Any], replayed: bool = False) -> None:
            stub._record(
                StubRequest(
                    method=method,
                    path=split.path,
                    params=params,
                    form=form,
                    idempotency_key=headers.get("idempotency-key"),
                    api_key=api_key,
                    auth_scheme=scheme,
                    headers=headers,
                    status=status,
                    replayed=replayed,
                    fault=fault.label() if fault else None,
                )
            )

        if fault is not None and fault.kind == "drop":
            record(None, _safe_nest(form))
            self.close_connection = True
            return  # nothing written: the client sees "connection closed without response"
        if fault is not None and fault.kind == "status":
            record(fault.status, _safe_nest(form))
            self._send(fault.status, _fault_body(fault.status), headers)
            return

        params: dict[str, Any] = {}
        if len(pairs) != len(form):
            status, body, replayed = 400, _StubError(400, "Duplicate parameter").body, False
        else:
            try:
                status, body, replayed, params, _, _ = stub._process(method, split.path, form, headers)
            except Exception as exc:
                logger.exception("StripeStub internal error")
                stub.internal_errors.append(exc)
                status, body, replayed = 500, _fault_body(500), False
        record(status, params, replayed)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        try:
            self._send(status, body, headers, replayed=replayed)
        except OSError:
            logger.debug("client went away before the stub answered")

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str], *, replayed: bool = False) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", _new_id("req"))
        if "stripe-version" in headers:
            self.send_header("Stripe-Version", headers["stripe-version"])
        if "idempotency-key" in headers:
            self.send_header("Idempotency-Key", headers["idempotency-key"])
        if replayed:
            self.send_header("Idempotent-Replayed", "true")
        self.end_headers()
        self.wfile.write(payload)


def _safe_nest(form: dict[str, str]) -> dict[str, Any]:
    try:
        return _nest(form)
    except _StubError:
        return {}


def _fault_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {
            "error": {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Too many requests hit the API too quickly.",
            }
        }
    return {"error": {"type": "api_error", "message": f"Simulated Stripe failure (HTTP {status})."}}
