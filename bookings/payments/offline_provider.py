"""Offline provider: deterministic, no network, for the demo and tests.

Outcomes depend only on the arguments, never on hidden state:

* ``create_payment`` -> ``off_pi_<hex>`` with status ``requires_payment_method`` and client secret
  ``<id>_secret_<hex>``.
* ``confirm(id, "pm_card_visa")`` -> ``"succeeded"``;
  ``confirm(id, "pm_card_chargeDeclined")`` -> :class:`PaymentDeclined` (code ``card_declined``);
  any other payment method -> :class:`UnsupportedTestPaymentMethod` (a ``ValueError``).
* ``charge_off_session`` uses the same payment-method table (plus
  ``pm_card_authenticationRequired`` -> declined with ``authentication_required``).
* ``refund`` -> ``off_re_<hex>``, ``succeeded`` immediately. ``cancel_payment`` -> ``canceled``.

The Django app is the source of truth for payment state: persist what these methods return.
The provider keeps no module-level state. Each *instance* remembers the payments it created (only so
``retrieve_payment`` and idempotent replays work inside one process, like Stripe would); an
instance that did not create a payment answers ``retrieve_payment`` with
:class:`PaymentConfigurationError` (code ``resource_missing``, the same as Stripe's 404), while
``confirm``/``refund``/``cancel_payment`` still work from their arguments alone. It remembers the
last ``remember`` payments and idempotency keys only (oldest forgotten first, as Stripe forgets a
key after 24 hours), so a long-running demo does not grow without bound.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar, cast

from .providers import (
    PAYMENT_CANCELED,
    PAYMENT_REQUIRES_PAYMENT_METHOD,
    PAYMENT_SUCCEEDED,
    IdempotencyConflict,
    InvalidPaymentRequest,
    PaymentConfigurationError,
    PaymentDeclined,
    ProviderPayment,
    ProviderRefund,
    normalize_currency,
    validate_amount_minor,
    validate_idempotency_key,
    validate_metadata,
    validate_ref,
    validate_refund_reason,
)

__all__ = [
    "OFFLINE_PAYMENT_PREFIX",
    "OFFLINE_REFUND_PREFIX",
    "TEST_PAYMENT_METHODS",
    "OfflineProvider",
    "UnsupportedTestPaymentMethod",
]

OFFLINE_PAYMENT_PREFIX = "off_pi_"
OFFLINE_REFUND_PREFIX = "off_re_"

# Stripe's test PaymentMethod ids, so demo/test data reads the same with either provider.
PM_VISA = "pm_card_visa"
PM_DECLINED = "pm_card_chargeDeclined"
PM_AUTHENTICATION_REQUIRED = "pm_card_authenticationRequired"
TEST_PAYMENT_METHODS = frozenset({PM_VISA, PM_DECLINED, PM_AUTHENTICATION_REQUIRED})


class UnsupportedTestPaymentMethod(InvalidPaymentRequest):
    """The offline provider only understands Stripe's test payment-method ids (a ValueError)."""


_R = TypeVar("_R", ProviderPayment, ProviderRefund)


def _token() -> str:
    return secrets.token_hex(12)


class OfflineProvider:
    name = "offline"

    def __init__(self, *, default_currency: str = "eur", remember: int = 50_000) -> None:
        """``default_currency`` is reported for refunds of payments this instance did not create
        (the offline provider cannot know their currency); ``remember`` bounds what it keeps."""
        if remember < 1:
            raise ValueError("remember must be at least 1")
        self.default_currency = normalize_currency(default_currency)
        self.remember = remember
        self._lock = threading.Lock()
        self._payments: dict[str, ProviderPayment] = {}
        self._by_key: dict[str, tuple[tuple[object, ...], object]] = {}

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
        amount = validate_amount_minor(amount_minor)
        cur = normalize_currency(currency)
        meta = validate_metadata(metadata)
        key = validate_idempotency_key(idempotency_key)
        if customer_ref is not None:
            validate_ref(customer_ref, "customer_ref")
        if save_card and customer_ref is None:
            raise InvalidPaymentRequest("save_card=True requires customer_ref", code="customer_required")
        fingerprint = ("create", amount, cur, tuple(sorted(meta.items())), customer_ref, bool(save_card))

        def build() -> ProviderPayment:
            pid = f"{OFFLINE_PAYMENT_PREFIX}{_token()}"
            return ProviderPayment(
                id=pid,
                client_secret=f"{pid}_secret_{_token()}",
                status=PAYMENT_REQUIRES_PAYMENT_METHOD,
                amount_minor=amount,
                currency=cur,
            )

        return self._idempotent(key, fingerprint, build)

    def confirm(self, provider_payment_id: str, payment_method: str) -> str:
        """Simulate the browser confirming the payment with a test card.

        Returns ``"succeeded"`` or raises :class:`PaymentDeclined` /
        :class:`UnsupportedTestPaymentMethod` (/ :class:`PaymentConfigurationError` for a payment this
        instance knows is canceled). Confirming an already succeeded payment returns ``"succeeded"``.
        """
        pid = self._check_payment_id(provider_payment_id)
        with self._lock:
            known = self._payments.get(pid)
        if known is not None and known.status == PAYMENT_SUCCEEDED:
            return PAYMENT_SUCCEEDED  # double submit: already paid, nothing charged again
        if known is not None and known.status == PAYMENT_CANCELED:
            raise PaymentConfigurationError(
                f"Payment {pid} is canceled and cannot be confirmed",
                code="payment_intent_unexpected_state",
                http_status=400,
            )
        self._outcome(payment_method, pid, off_session=False)
        with self._lock:
            if known is not None:
                self._payments[pid] = replace(known, status=PAYMENT_SUCCEEDED)
        return PAYMENT_SUCCEEDED

    def retrieve_payment(self, provider_payment_id: str) -> ProviderPayment:
        pid = self._check_payment_id(provider_payment_id)
        with self._lock:
            payment = self._payments.get(pid)
        if payment is None:
            raise PaymentConfigurationError(
                f"No such offline payment: {pid!r} (not created by this OfflineProvider instance; "
                "read the status from the database instead)",
                code="resource_missing",
                http_status=404,
            )
        return payment

    def refund(
        self,
        *,
        provider_payment_id: str,
        amount_minor: int,
        idempotency_key: str,
        reason: str | None = None,
    ) -> ProviderRefund:
        pid = self._check_payment_id(provider_payment_id)
        amount = validate_amount_minor(amount_minor)
        validate_refund_reason(reason)
        key = validate_idempotency_key(idempotency_key)
        with self._lock:
            known = self._payments.get(pid)
        if known is not None and amount > known.amount_minor:
            raise InvalidPaymentRequest(
                f"Refund amount {amount} exceeds the payment amount {known.amount_minor}",
                code="amount_too_large",
            )
        currency = known.currency if known is not None else self.default_currency

        def build() -> ProviderRefund:
            return ProviderRefund(
                id=f"{OFFLINE_REFUND_PREFIX}{_token()}",
                status=PAYMENT_SUCCEEDED,
                amount_minor=amount,
                currency=currency,
            )

        return self._idempotent(key, ("refund", pid, amount, reason), build)

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
        amount = validate_amount_minor(amount_minor)
        cur = normalize_currency(currency)
        meta = validate_metadata(metadata)
        key = validate_idempotency_key(idempotency_key)
        validate_ref(customer_ref, "customer_ref")
        pm = validate_ref(payment_method_ref, "payment_method_ref")
        fingerprint = ("charge", amount, cur, tuple(sorted(meta.items())), customer_ref, pm)

        def build() -> ProviderPayment:
            pid = f"{OFFLINE_PAYMENT_PREFIX}{_token()}"
            self._outcome(pm, pid, off_session=True)
            return ProviderPayment(
                id=pid,
                client_secret=f"{pid}_secret_{_token()}",
                status=PAYMENT_SUCCEEDED,
                amount_minor=amount,
                currency=cur,
            )

        return self._idempotent(key, fingerprint, build)

    def cancel_payment(self, provider_payment_id: str, idempotency_key: str) -> str:
        """Return ``"canceled"``; a payment this instance knows to be succeeded cannot be canceled."""
        pid = self._check_payment_id(provider_payment_id)
        validate_idempotency_key(idempotency_key)
        with self._lock:
            known = self._payments.get(pid)
            if known is None:
                return PAYMENT_CANCELED  # stateless answer: the caller's DB holds the payment
            if known.status == PAYMENT_SUCCEEDED:
                raise PaymentConfigurationError(
                    f"Payment {pid} has succeeded and cannot be canceled; refund it instead",
                    code="payment_intent_unexpected_state",
                    http_status=400,
                )
            self._payments[pid] = replace(known, status=PAYMENT_CANCELED)
            return PAYMENT_CANCELED

    # ------------------------------------------------------------------------------------------

    @staticmethod
    def _check_payment_id(provider_payment_id: str) -> str:
        pid = validate_ref(provider_payment_id, "provider_payment_id")
        if not pid.startswith(OFFLINE_PAYMENT_PREFIX):
            raise InvalidPaymentRequest(
                f"{pid!r} is not an offline payment id (expected {OFFLINE_PAYMENT_PREFIX}...); "
                "was it created by another provider?",
                code="resource_missing",
            )
        return pid

    @staticmethod
    def _outcome(payment_method: str, pid: str, *, off_session: bool) -> None:
        if payment_method == PM_VISA:
            return
        if payment_method == PM_DECLINED:
            raise PaymentDeclined(
                "card_declined", "Your card was declined.", code="card_declined", provider_payment_id=pid
            )
        if payment_method == PM_AUTHENTICATION_REQUIRED and off_session:
            raise PaymentDeclined(
                "authentication_required",
                "This payment requires the customer to authenticate.",
                code="authentication_required",
                provider_payment_id=pid,
            )
        if payment_method == PM_AUTHENTICATION_REQUIRED:
            return  # on-session the customer completes 3-D Secure in the browser
        raise UnsupportedTestPaymentMethod(
            f"OfflineProvider does not know payment method {payment_method!r}; "
            f"use one of {sorted(TEST_PAYMENT_METHODS)}"
        )

    def _idempotent(self, key: str, fingerprint: tuple[object, ...], build: Callable[[], _R]) -> _R:
        """Replay the first result for ``key`` (per instance), like Stripe's idempotency layer."""
        with self._lock:
            previous = self._by_key.get(key)
            if previous is not None:
                if previous[0] != fingerprint:
                    raise IdempotencyConflict(
                        f"Idempotency key {key!r} was already used with different parameters",
                        code="idempotency_error",
                        http_status=400,
                    )
                return cast(_R, previous[1])  # the fingerprint's first item pins the result kind
            result = build()  # may raise PaymentDeclined: nothing is stored then
            self._by_key[key] = (fingerprint, result)
            if isinstance(result, ProviderPayment):
                self._payments[result.id] = result
            for remembered in (self._by_key, self._payments):
                while len(remembered) > self.remember:  # dicts keep insertion order: oldest first
                    del remembered[next(iter(remembered))]
            return result
