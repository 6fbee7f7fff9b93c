"""Stripe implementation of :class:`~bookings.payments.providers.PaymentProvider`.

Uses the official ``stripe`` library (v16) through a per-instance :class:`stripe.StripeClient`, so no
global ``stripe.api_key`` is touched and several providers (e.g. per-tenant keys) can coexist.
The library retries network errors, 409s and 5xx responses ``max_network_retries`` times with the
SAME ``Idempotency-Key`` header; whatever still fails is translated into our exception families.
"""

from __future__ import annotations

from typing import Any

import stripe

from .providers import (
    IdempotencyConflict,
    InvalidPaymentRequest,
    PaymentConfigurationError,
    PaymentDeclined,
    PaymentGatewayError,
    PaymentProviderError,
    ProviderPayment,
    ProviderRefund,
    normalize_currency,
    validate_amount_minor,
    validate_idempotency_key,
    validate_metadata,
    validate_ref,
    validate_refund_reason,
)

__all__ = ["StripeProvider", "translate_stripe_error"]


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        timeout_seconds: float = 10,
        max_network_retries: int = 2,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        """``api_base`` overrides ``https://api.stripe.com`` (tests point it at the local stub).

        ``timeout_seconds`` is the per-attempt HTTP timeout; the worst-case wall time of one call is
        roughly ``(max_network_retries + 1) * timeout_seconds`` plus back-off sleeps (0.5s, 1s, ...).
        ``http_client`` is only for special setups (proxies); by default a
        ``stripe.RequestsClient(timeout=timeout_seconds)`` is used.
        """
        if not isinstance(api_key, str) or not api_key.strip():
            raise PaymentConfigurationError("Stripe API key is empty", code="api_key_missing")
        if api_key.startswith("pk_"):
            raise PaymentConfigurationError(
                "A publishable key (pk_...) cannot be used server-side; use a secret (sk_...) "
                "or restricted (rk_...) key",
                code="secret_key_required",
            )
        if timeout_seconds <= 0:
            raise PaymentConfigurationError("timeout_seconds must be positive")
        if max_network_retries < 0:
            raise PaymentConfigurationError("max_network_retries must be >= 0")
        self.api_base = api_base.rstrip("/") if api_base else None
        self.timeout_seconds = timeout_seconds
        self.max_network_retries = max_network_retries
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self.api_base} if self.api_base else None,
            http_client=http_client or stripe.RequestsClient(timeout=timeout_seconds),
            max_network_retries=max_network_retries,
        )

    def __repr__(self) -> str:  # never include the key
        return f"StripeProvider(api_base={self.api_base!r}, timeout_seconds={self.timeout_seconds})"

    # ------------------------------------------------------------------------------------------
    # PaymentProvider API
    # ------------------------------------------------------------------------------------------

    def create_payment(
        self,
        *,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
        customer_ref: str | None = None,
        save_card: bool = False,
    ) -> ProviderPayment:
        """Create a PaymentIntent to be confirmed in the browser with ``client_secret``.

        ``save_card=True`` sets ``setup_future_usage="off_session"`` so the card can later be used
        by :meth:`charge_off_session`; it needs a ``customer_ref`` (a Stripe ``cus_...`` id) because
        a saved card is only reusable when attached to a Customer.
        """
        params: dict[str, Any] = {
            "amount": validate_amount_minor(amount_minor),
            "currency": normalize_currency(currency),
            "automatic_payment_methods": {"enabled": True},
            "metadata": validate_metadata(metadata),
        }
        key = validate_idempotency_key(idempotency_key)
        if customer_ref is not None:
            params["customer"] = validate_ref(customer_ref, "customer_ref")
        if save_card:
            if customer_ref is None:
                raise InvalidPaymentRequest(
                    "save_card=True requires customer_ref (the card is attached to that Customer)",
                    code="customer_required",
                )
            params["setup_future_usage"] = "off_session"
        intent = self._call(self._client.v1.payment_intents.create, params, options={"idempotency_key": key})
        return _to_payment(intent)

    def retrieve_payment(self, provider_payment_id: str) -> ProviderPayment:
        pid = validate_ref(provider_payment_id, "provider_payment_id")
        intent = self._call(self._client.v1.payment_intents.retrieve, pid)
        return _to_payment(intent)

    def refund(
        self,
        *,
        provider_payment_id: str,
        amount_minor: int,
        idempotency_key: str,
        reason: str | None = None,
    ) -> ProviderRefund:
        params: dict[str, Any] = {
            "payment_intent": validate_ref(provider_payment_id, "provider_payment_id"),
            "amount": validate_amount_minor(amount_minor),
        }
        checked_reason = validate_refund_reason(reason)
        if checked_reason is not None:
            params["reason"] = checked_reason
        key = validate_idempotency_key(idempotency_key)
        refund = self._call(self._client.v1.refunds.create, params, options={"idempotency_key": key})
        data = refund.to_dict()
        return ProviderRefund(
            id=_require(data, "id", str),
            status=_require(data, "status", str),
            amount_minor=_require(data, "amount", int),
            currency=_require(data, "currency", str).lower(),
        )

    def charge_off_session(
        self,
        *,
        customer_ref: str,
        payment_method_ref: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> ProviderPayment:
        """Charge a saved card without the customer present (e.g. overstay fees).

        Raises :class:`PaymentDeclined` for declines; ``exc.requires_customer_action`` is True when
        the bank demands 3-D Secure (ask the customer to pay on-session instead) and
        ``exc.provider_payment_id`` is the failed PaymentIntent.
        """
        params: dict[str, Any] = {
            "amount": validate_amount_minor(amount_minor),
            "currency": normalize_currency(currency),
            "customer": validate_ref(customer_ref, "customer_ref"),
            "payment_method": validate_ref(payment_method_ref, "payment_method_ref"),
            # Cards only: with automatic_payment_methods Stripe would demand a return_url for
            # redirect-based methods, which makes no sense off-session.
            "payment_method_types": ["card"],
            "off_session": True,
            "confirm": True,
            "metadata": validate_metadata(metadata),
        }
        key = validate_idempotency_key(idempotency_key)
        intent = self._call(self._client.v1.payment_intents.create, params, options={"idempotency_key": key})
        return _to_payment(intent)

    def cancel_payment(self, provider_payment_id: str, idempotency_key: str) -> str:
        """Cancel a not-yet-succeeded PaymentIntent; returns the new status (``"canceled"``).

        A succeeded payment cannot be canceled (PaymentConfigurationError with code
        ``payment_intent_unexpected_state``): refund it instead.
        """
        pid = validate_ref(provider_payment_id, "provider_payment_id")
        key = validate_idempotency_key(idempotency_key)
        intent = self._call(self._client.v1.payment_intents.cancel, pid, options={"idempotency_key": key})
        return _to_payment(intent).status

    # ------------------------------------------------------------------------------------------

    @staticmethod
    def _call(method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except stripe.StripeError as exc:
            raise translate_stripe_error(exc) from exc


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _require(data: dict[str, Any], field: str, kind: type) -> Any:
    value = data.get(field)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise PaymentGatewayError(f"Malformed Stripe response: field {field!r} is {value!r}", code="malformed_response")
    return value


def _to_payment(intent: stripe.PaymentIntent) -> ProviderPayment:
    data = intent.to_dict()
    secret = data.get("client_secret")
    return ProviderPayment(
        id=_require(data, "id", str),
        client_secret=secret if isinstance(secret, str) else None,
        status=_require(data, "status", str),
        amount_minor=_require(data, "amount", int),
        currency=_require(data, "currency", str).lower(),
    )


def _error_body(exc: stripe.StripeError) -> dict[str, Any]:
    body = exc.json_body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return {}


def translate_stripe_error(exc: stripe.StripeError) -> PaymentProviderError:
    """Map a ``stripe`` exception onto PaymentDeclined / PaymentGatewayError /
    PaymentConfigurationError (the original stays available as ``__cause__``)."""
    err = _error_body(exc)
    message = str(err.get("message") or exc.user_message or type(exc).__name__)
    code = err.get("code") or exc.code
    common: dict[str, Any] = {"http_status": exc.http_status, "request_id": exc.request_id}

    if isinstance(exc, stripe.CardError):
        intent = err.get("payment_intent")
        return PaymentDeclined(
            str(err.get("decline_code") or code or "card_declined"),
            message,
            code=str(code or "card_declined"),
            provider_payment_id=intent.get("id") if isinstance(intent, dict) else None,
            **common,
        )
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return PaymentGatewayError(message, code=code, **common)
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyConflict(message, code=code or "idempotency_error", **common)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError | stripe.InvalidRequestError):
        return PaymentConfigurationError(message, code=code, **common)
    if isinstance(exc, stripe.APIError) and (
        exc.http_status is None or exc.http_status >= 500 or exc.http_status == 409
    ):
        return PaymentGatewayError(message, code=code, **common)
    # Anything else (unexpected 4xx, new error classes) needs a human: do not retry automatically.
    return PaymentConfigurationError(message, code=code, **common)
