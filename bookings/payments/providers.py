"""Payment-provider interface shared by the Stripe and offline implementations.

Rules every implementation follows:

* Money is always an ``int`` amount in the currency's minor unit (cents for EUR/USD, yen for JPY)
  plus a lower-case ISO 4217 code (``"eur"``). Floats, ``Decimal`` and ``bool`` are rejected.
* Every call that creates or changes something takes an ``idempotency_key``. Pass a key that is
  stable for the *business operation* (for example ``f"booking-{booking.pk}-payment-v1"``) and reuse
  the same key when retrying after :class:`PaymentGatewayError`; the provider then returns the
  original result instead of charging twice.
* Errors are reported with exactly three exception families (all subclasses of
  :class:`PaymentProviderError`): :class:`PaymentDeclined`, :class:`PaymentGatewayError`
  (retryable) and :class:`PaymentConfigurationError` (our bug or bad configuration; do not retry).

This module has no Django dependency.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "PAYMENT_CANCELED",
    "PAYMENT_PROCESSING",
    "PAYMENT_REQUIRES_ACTION",
    "PAYMENT_REQUIRES_CAPTURE",
    "PAYMENT_REQUIRES_CONFIRMATION",
    "PAYMENT_REQUIRES_PAYMENT_METHOD",
    "PAYMENT_SUCCEEDED",
    "REFUND_REASONS",
    "IdempotencyConflict",
    "InvalidPaymentRequest",
    "PaymentConfigurationError",
    "PaymentDeclined",
    "PaymentGatewayError",
    "PaymentProvider",
    "PaymentProviderError",
    "ProviderPayment",
    "ProviderRefund",
    "normalize_currency",
    "validate_amount_minor",
    "validate_idempotency_key",
    "validate_metadata",
    "validate_ref",
    "validate_refund_reason",
]

# PaymentIntent statuses (same strings as Stripe; the offline provider uses the same values).
PAYMENT_REQUIRES_PAYMENT_METHOD = "requires_payment_method"
PAYMENT_REQUIRES_CONFIRMATION = "requires_confirmation"
PAYMENT_REQUIRES_ACTION = "requires_action"
PAYMENT_PROCESSING = "processing"
PAYMENT_REQUIRES_CAPTURE = "requires_capture"
PAYMENT_CANCELED = "canceled"
PAYMENT_SUCCEEDED = "succeeded"

# Stripe only accepts these refund reasons (or none).
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})

MAX_IDEMPOTENCY_KEY_LENGTH = 255
_MAX_AMOUNT_MINOR = 99_999_999  # Stripe's upper bound for `amount` (8 digits)
_MAX_METADATA_KEYS = 50
_MAX_METADATA_KEY_LENGTH = 40
_MAX_METADATA_VALUE_LENGTH = 500
_CURRENCY_RE = re.compile(r"^[a-z]{3}$")


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderPayment:
    """A provider-side payment (a Stripe PaymentIntent)."""

    id: str
    client_secret: str | None  # hand to the browser only; never log or persist in plain text
    status: str  # one of the PAYMENT_* constants
    amount_minor: int
    currency: str  # lower-case ISO 4217


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    id: str
    status: str  # "pending" | "requires_action" | "succeeded" | "failed" | "canceled"
    amount_minor: int
    currency: str  # lower-case ISO 4217


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class PaymentProviderError(Exception):
    """Base class. ``retryable`` tells the caller whether retrying with the SAME key can help."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code  # provider error code, e.g. "amount_too_small", "resource_missing"
        self.http_status = http_status
        self.request_id = request_id  # Stripe "req_..." id, useful in support tickets


class PaymentDeclined(PaymentProviderError):
    """The card/issuer refused the payment. Show a message to the customer; do not retry blindly.

    ``decline_code`` is the most specific reason available: Stripe's issuer ``decline_code``
    (``"generic_decline"``, ``"insufficient_funds"``...) or, when Stripe gives none, the error
    ``code`` (``"card_declined"``, ``"expired_card"``, ``"authentication_required"``...).
    ``code`` is always the Stripe error code (``"card_declined"`` for a plain decline).
    ``provider_payment_id`` is the PaymentIntent that failed, when the provider reports it.
    """

    retryable = False

    def __init__(
        self,
        decline_code: str,
        message: str = "The card was declined.",
        *,
        code: str | None = None,
        provider_payment_id: str | None = None,
        http_status: int | None = 402,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code or decline_code, http_status=http_status, request_id=request_id)
        self.decline_code = decline_code
        self.provider_payment_id = provider_payment_id

    @property
    def requires_customer_action(self) -> bool:
        """True when the bank wants the customer to authenticate (3-D Secure) on-session."""
        return self.code == "authentication_required" or self.decline_code == "authentication_required"


class PaymentGatewayError(PaymentProviderError):
    """Network failure, timeout, rate limit or provider 5xx. Retry later with the SAME key."""

    retryable = True


class PaymentConfigurationError(PaymentProviderError):
    """Bad/missing API key, insufficient permissions, or an invalid request built by our code."""

    retryable = False


class InvalidPaymentRequest(PaymentConfigurationError, ValueError):
    """Rejected locally before any network call (float amount, bad currency, empty key...)."""


class IdempotencyConflict(PaymentConfigurationError):
    """The idempotency key was already used with different parameters (a bug in key derivation)."""


# --------------------------------------------------------------------------------------------------
# Interface
# --------------------------------------------------------------------------------------------------


@runtime_checkable
class PaymentProvider(Protocol):
    name: str  # "stripe" | "offline"

    def create_payment(
        self,
        *,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
        customer_ref: str | None = None,
        save_card: bool = False,
    ) -> ProviderPayment: ...

    def retrieve_payment(self, provider_payment_id: str) -> ProviderPayment: ...

    def refund(
        self,
        *,
        provider_payment_id: str,
        amount_minor: int,
        idempotency_key: str,
        reason: str | None = None,
    ) -> ProviderRefund: ...

    def charge_off_session(
        self,
        *,
        customer_ref: str,
        payment_method_ref: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> ProviderPayment: ...

    def cancel_payment(self, provider_payment_id: str, idempotency_key: str) -> str:
        """Returns the new status, ``"canceled"``."""
        ...


# --------------------------------------------------------------------------------------------------
# Validation helpers (shared by the implementations; raise InvalidPaymentRequest)
# --------------------------------------------------------------------------------------------------


def validate_amount_minor(amount_minor: object) -> int:
    """Return ``amount_minor`` if it is a positive ``int`` within Stripe's range."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise InvalidPaymentRequest(
            f"amount_minor must be an int in minor units, got {type(amount_minor).__name__} {amount_minor!r}",
            code="parameter_invalid_integer",
        )
    if amount_minor <= 0:
        raise InvalidPaymentRequest(f"amount_minor must be positive, got {amount_minor}", code="amount_too_small")
    if amount_minor > _MAX_AMOUNT_MINOR:
        raise InvalidPaymentRequest(
            f"amount_minor must be at most {_MAX_AMOUNT_MINOR}, got {amount_minor}",
            code="amount_too_large",
        )
    return amount_minor


def normalize_currency(currency: object) -> str:
    """Return the lower-case ISO 4217 code (``"EUR"`` -> ``"eur"``)."""
    if not isinstance(currency, str) or not _CURRENCY_RE.fullmatch(currency.strip().lower()):
        raise InvalidPaymentRequest(
            f"currency must be a 3-letter ISO 4217 code, got {currency!r}", code="invalid_currency"
        )
    return currency.strip().lower()


def validate_idempotency_key(idempotency_key: object) -> str:
    if not isinstance(idempotency_key, str) or not idempotency_key.strip():
        raise InvalidPaymentRequest("idempotency_key must be a non-empty string")
    if len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidPaymentRequest(f"idempotency_key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    return idempotency_key


def validate_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Check Stripe's metadata limits (50 keys, key <= 40 chars, value <= 500 chars, str only)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidPaymentRequest("metadata must be a mapping of str to str")
    if len(metadata) > _MAX_METADATA_KEYS:
        raise InvalidPaymentRequest(f"metadata can have at most {_MAX_METADATA_KEYS} keys")
    clean: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key or len(key) > _MAX_METADATA_KEY_LENGTH or "[" in key:
            raise InvalidPaymentRequest(f"invalid metadata key {key!r}")
        if not isinstance(value, str) or len(value) > _MAX_METADATA_VALUE_LENGTH:
            raise InvalidPaymentRequest(
                f"metadata[{key!r}] must be a str of at most {_MAX_METADATA_VALUE_LENGTH} characters"
            )
        clean[key] = value
    return clean


def validate_refund_reason(reason: str | None) -> str | None:
    if reason is not None and reason not in REFUND_REASONS:
        raise InvalidPaymentRequest(f"refund reason must be None or one of {sorted(REFUND_REASONS)}, got {reason!r}")
    return reason


def validate_ref(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPaymentRequest(f"{field} must be a non-empty string")
    return value
