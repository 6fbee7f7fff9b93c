"""Payment providers: StripeProvider against the local StripeStub (real ``stripe`` library, real HTTP on
127.0.0.1, never the real Stripe), webhook signatures, and the OfflineProvider.

No database needed; runs with or without pytest-django.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe

from bookings.payments import (
    PAYMENT_CANCELED,
    PAYMENT_REQUIRES_ACTION,
    PAYMENT_REQUIRES_PAYMENT_METHOD,
    PAYMENT_SUCCEEDED,
    IdempotencyConflict,
    InvalidPaymentRequest,
    InvalidWebhook,
    OfflineProvider,
    PaymentConfigurationError,
    PaymentDeclined,
    PaymentGatewayError,
    PaymentProvider,
    ProviderPayment,
    ProviderRefund,
    StripeProvider,
    UnsupportedTestPaymentMethod,
    parse_stripe_event,
    sign_stripe_payload,
)
from bookings.payments.stripe_provider import translate_stripe_error
from tests.stripe_stub import StripeStub

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec_test_0123456789abcdef"
PI_ID_RE = re.compile(r"^pi_[0-9a-f]{24}$")


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never route the stub's 127.0.0.1 traffic through a proxy configured in the environment.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Skip the library's 0.5s+ back-off between retries, but record each retry it schedules."""
    calls: list[int] = []

    def no_sleep(self: stripe.HTTPClient, num_retries: int) -> float:
        calls.append(num_retries)
        return 0.0

    monkeypatch.setattr(stripe.RequestsClient, "_sleep_time_seconds", no_sleep)
    return calls


@pytest.fixture
def stub() -> Iterator[StripeStub]:
    with StripeStub() as running:
        yield running
        assert running.internal_errors == []


@pytest.fixture
def provider(stub: StripeStub, retry_sleeps: list[int]) -> StripeProvider:
    return StripeProvider(stub.api_key, api_base=stub.url, timeout_seconds=2, max_network_retries=2)


def _create(provider: PaymentProvider, key: str = "booking-42-payment", **overrides: Any) -> ProviderPayment:
    kwargs: dict[str, object] = {
        "amount_minor": 2500,
        "currency": "eur",
        "idempotency_key": key,
        "metadata": {"booking_id": "42"},
    }
    kwargs.update(overrides)
    return provider.create_payment(**kwargs)  # type: ignore[arg-type]


def _paid(provider: StripeProvider, stub: StripeStub, key: str = "booking-42-payment") -> ProviderPayment:
    payment = _create(provider, key)
    assert stub.confirm_payment_intent(payment.id, "pm_card_visa") == PAYMENT_SUCCEEDED
    return payment


def _posts(stub: StripeStub, path: str = "/v1/payment_intents") -> list:
    return stub.requests_to("POST", path)


# --------------------------------------------------------------------------------------------------
# StripeProvider: creating payments
# --------------------------------------------------------------------------------------------------


def test_create_payment_sends_integer_amount_currency_and_idempotency_key(
    provider: StripeProvider, stub: StripeStub
) -> None:
    payment = provider.create_payment(
        amount_minor=2500,
        currency="EUR",
        idempotency_key="booking-42-payment",
        metadata={"booking_id": "42", "kind": "reservation"},
    )

    assert PI_ID_RE.match(payment.id)
    assert payment.client_secret is not None
    assert payment.client_secret.startswith(f"{payment.id}_secret_")
    assert payment.status == PAYMENT_REQUIRES_PAYMENT_METHOD
    assert payment.amount_minor == 2500
    assert payment.currency == "eur"

    (request,) = stub.requests
    assert request.method == "POST"
    assert request.path == "/v1/payment_intents"
    assert request.idempotency_key == "booking-42-payment"
    assert request.api_key == stub.api_key
    assert request.auth_scheme == "Bearer"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.params == {
        "amount": "2500",
        "currency": "eur",
        "automatic_payment_methods": {"enabled": "true"},
        "metadata": {"booking_id": "42", "kind": "reservation"},
    }
    assert request.form["metadata[booking_id]"] == "42"
    assert request.form["automatic_payment_methods[enabled]"] == "true"

    stored = stub.payment_intents[payment.id]
    assert stored["amount"] == 2500
    assert stored["currency"] == "eur"
    assert stored["metadata"] == {"booking_id": "42", "kind": "reservation"}
    assert stored["client_secret"] == payment.client_secret


def test_create_payment_save_card_sets_customer_and_setup_future_usage(
    provider: StripeProvider, stub: StripeStub
) -> None:
    payment = _create(provider, customer_ref="cus_123", save_card=True)

    (request,) = stub.requests
    assert request.params["customer"] == "cus_123"
    assert request.params["setup_future_usage"] == "off_session"
    assert stub.payment_intents[payment.id]["setup_future_usage"] == "off_session"


def test_create_payment_without_save_card_sends_no_setup_future_usage(
    provider: StripeProvider, stub: StripeStub
) -> None:
    _create(provider, customer_ref="cus_123")

    (request,) = stub.requests
    assert request.params["customer"] == "cus_123"
    assert "setup_future_usage" not in request.params


def test_save_card_requires_customer(provider: StripeProvider, stub: StripeStub) -> None:
    with pytest.raises(InvalidPaymentRequest, match="customer_ref"):
        _create(provider, save_card=True)
    assert stub.requests == []


def test_retry_with_same_idempotency_key_returns_the_same_intent(provider: StripeProvider, stub: StripeStub) -> None:
    first = _create(provider, "booking-42-payment")
    second = _create(provider, "booking-42-payment")

    assert second == first
    assert len(stub.payment_intents) == 1
    posts = _posts(stub)
    assert [r.idempotency_key for r in posts] == ["booking-42-payment", "booking-42-payment"]
    assert [r.replayed for r in posts] == [False, True]


def test_different_keys_create_different_intents(provider: StripeProvider, stub: StripeStub) -> None:
    first = _create(provider, "booking-42-payment")
    second = _create(provider, "booking-43-payment")

    assert first.id != second.id
    assert len(stub.payment_intents) == 2


def test_same_key_with_different_amount_is_an_idempotency_conflict(provider: StripeProvider, stub: StripeStub) -> None:
    _create(provider, "booking-42-payment", amount_minor=2500)

    with pytest.raises(IdempotencyConflict) as excinfo:
        _create(provider, "booking-42-payment", amount_minor=2600)

    assert isinstance(excinfo.value, PaymentConfigurationError)
    assert excinfo.value.code == "idempotency_error"
    assert excinfo.value.http_status == 400
    assert excinfo.value.retryable is False
    assert len(stub.payment_intents) == 1


@pytest.mark.parametrize("amount", [25.0, Decimal("25.00"), True, 0, -100, "2500", None, 100_000_000])
def test_invalid_amounts_are_rejected_before_any_request(
    provider: StripeProvider, stub: StripeStub, amount: object
) -> None:
    with pytest.raises(InvalidPaymentRequest):
        _create(provider, amount_minor=amount)
    assert stub.requests == []


@pytest.mark.parametrize("currency", ["euro", "", "E1R", "€", None, "eu"])
def test_invalid_currencies_are_rejected_before_any_request(
    provider: StripeProvider, stub: StripeStub, currency: object
) -> None:
    with pytest.raises(InvalidPaymentRequest):
        _create(provider, currency=currency)
    assert stub.requests == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k" * 256}, "idempotency_key"),
        ({"metadata": {"booking_id": 42}}, "metadata"),
        ({"metadata": {"x" * 41: "1"}}, "metadata key"),
    ],
)
def test_invalid_key_or_metadata_rejected_locally(
    provider: StripeProvider, stub: StripeStub, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidPaymentRequest, match=message):
        _create(provider, **overrides)
    assert stub.requests == []


def test_amount_below_stripe_minimum_is_a_configuration_error(provider: StripeProvider, stub: StripeStub) -> None:
    # e.g. a 30-cent overstay fee: Stripe refuses EUR charges below 50 cents.
    with pytest.raises(PaymentConfigurationError) as excinfo:
        _create(provider, amount_minor=30)

    assert excinfo.value.code == "amount_too_small"
    assert excinfo.value.http_status == 400
    assert stub.requests[0].params["amount"] == "30"
    assert stub.payment_intents == {}


# --------------------------------------------------------------------------------------------------
# StripeProvider: retrieve, refund, cancel, off-session
# --------------------------------------------------------------------------------------------------


def test_retrieve_payment_reflects_confirmation_in_the_browser(provider: StripeProvider, stub: StripeStub) -> None:
    payment = _create(provider)
    stub.confirm_payment_intent(payment.id, "pm_card_visa")

    retrieved = provider.retrieve_payment(payment.id)

    assert retrieved == ProviderPayment(
        id=payment.id,
        client_secret=payment.client_secret,
        status=PAYMENT_SUCCEEDED,
        amount_minor=2500,
        currency="eur",
    )
    get = stub.requests[-1]
    assert (get.method, get.path) == ("GET", f"/v1/payment_intents/{payment.id}")
    assert get.api_key == stub.api_key


def test_retrieve_unknown_payment_is_a_configuration_error(provider: StripeProvider) -> None:
    with pytest.raises(PaymentConfigurationError) as excinfo:
        provider.retrieve_payment("pi_doesnotexist")
    assert excinfo.value.code == "resource_missing"
    assert excinfo.value.http_status == 404


def test_refund(provider: StripeProvider, stub: StripeStub) -> None:
    payment = _paid(provider, stub)

    refund = provider.refund(
        provider_payment_id=payment.id,
        amount_minor=1000,
        idempotency_key="booking-42-refund-1",
        reason="requested_by_customer",
    )

    assert re.match(r"^re_[0-9a-f]{24}$", refund.id)
    assert refund == ProviderRefund(id=refund.id, status="succeeded", amount_minor=1000, currency="eur")
    (request,) = _posts(stub, "/v1/refunds")
    assert request.idempotency_key == "booking-42-refund-1"
    assert request.params == {
        "payment_intent": payment.id,
        "amount": "1000",
        "reason": "requested_by_customer",
    }
    assert stub.refunds[refund.id]["payment_intent"] == payment.id

    # Retrying the same refund (same key) does not refund twice.
    again = provider.refund(
        provider_payment_id=payment.id,
        amount_minor=1000,
        idempotency_key="booking-42-refund-1",
        reason="requested_by_customer",
    )
    assert again == refund
    assert len(stub.refunds) == 1

    # Only 1500 is left to refund.
    with pytest.raises(PaymentConfigurationError) as excinfo:
        provider.refund(provider_payment_id=payment.id, amount_minor=1501, idempotency_key="booking-42-refund-2")
    assert excinfo.value.code == "amount_too_large"

    rest = provider.refund(provider_payment_id=payment.id, amount_minor=1500, idempotency_key="booking-42-refund-3")
    assert rest.amount_minor == 1500
    assert "reason" not in _posts(stub, "/v1/refunds")[-1].params


def test_refund_reason_must_be_one_stripe_accepts(provider: StripeProvider, stub: StripeStub) -> None:
    with pytest.raises(InvalidPaymentRequest, match="reason"):
        provider.refund(provider_payment_id="pi_x", amount_minor=100, idempotency_key="r", reason="booking cancelled")
    assert stub.requests == []


def test_refund_of_unpaid_payment_is_rejected(provider: StripeProvider, stub: StripeStub) -> None:
    payment = _create(provider)
    with pytest.raises(PaymentConfigurationError) as excinfo:
        provider.refund(provider_payment_id=payment.id, amount_minor=100, idempotency_key="r")
    assert excinfo.value.code == "payment_intent_unexpected_state"


def test_cancel_payment(provider: StripeProvider, stub: StripeStub) -> None:
    payment = _create(provider)

    assert provider.cancel_payment(payment.id, "booking-42-cancel") == PAYMENT_CANCELED

    request = stub.requests[-1]
    assert (request.method, request.path) == ("POST", f"/v1/payment_intents/{payment.id}/cancel")
    assert request.idempotency_key == "booking-42-cancel"
    assert stub.payment_intents[payment.id]["status"] == "canceled"


def test_cancel_succeeded_payment_is_rejected(provider: StripeProvider, stub: StripeStub) -> None:
    payment = _paid(provider, stub)
    with pytest.raises(PaymentConfigurationError) as excinfo:
        provider.cancel_payment(payment.id, "booking-42-cancel")
    assert excinfo.value.code == "payment_intent_unexpected_state"


def test_charge_off_session_with_saved_card(provider: StripeProvider, stub: StripeStub) -> None:
    payment = provider.charge_off_session(
        customer_ref="cus_123",
        payment_method_ref="pm_card_visa",
        amount_minor=750,
        currency="eur",
        idempotency_key="booking-42-overstay-1",
        metadata={"booking_id": "42", "kind": "overstay"},
    )

    assert payment.status == PAYMENT_SUCCEEDED
    assert payment.amount_minor == 750
    assert payment.currency == "eur"
    (request,) = stub.requests
    assert request.idempotency_key == "booking-42-overstay-1"
    assert request.params == {
        "amount": "750",
        "currency": "eur",
        "customer": "cus_123",
        "payment_method": "pm_card_visa",
        "payment_method_types": ["card"],
        "off_session": "true",
        "confirm": "true",
        "metadata": {"booking_id": "42", "kind": "overstay"},
    }
    assert stub.payment_intents[payment.id]["latest_charge"].startswith("ch_")


def test_declined_card_raises_payment_declined(provider: StripeProvider, stub: StripeStub) -> None:
    kwargs = {
        "customer_ref": "cus_123",
        "payment_method_ref": "pm_card_chargeDeclined",
        "amount_minor": 750,
        "currency": "eur",
        "idempotency_key": "booking-42-overstay-1",
        "metadata": {"booking_id": "42"},
    }
    with pytest.raises(PaymentDeclined) as excinfo:
        provider.charge_off_session(**kwargs)  # type: ignore[arg-type]

    declined = excinfo.value
    assert declined.decline_code == "generic_decline"
    assert declined.code == "card_declined"
    assert declined.http_status == 402
    assert declined.retryable is False
    assert declined.requires_customer_action is False
    assert declined.request_id is not None
    assert declined.request_id.startswith("req_")
    (pi_id,) = stub.payment_intents
    assert declined.provider_payment_id == pi_id
    assert stub.payment_intents[pi_id]["status"] == PAYMENT_REQUIRES_PAYMENT_METHOD
    assert isinstance(declined.__cause__, stripe.CardError)

    # Retrying with the same key replays the decline: no second charge attempt.
    with pytest.raises(PaymentDeclined) as again:
        provider.charge_off_session(**kwargs)  # type: ignore[arg-type]
    assert again.value.provider_payment_id == pi_id
    assert len(stub.payment_intents) == 1
    assert [r.replayed for r in stub.requests] == [False, True]


def test_insufficient_funds_decline_code(provider: StripeProvider) -> None:
    with pytest.raises(PaymentDeclined) as excinfo:
        provider.charge_off_session(
            customer_ref="cus_123",
            payment_method_ref="pm_card_chargeDeclinedInsufficientFunds",
            amount_minor=750,
            currency="eur",
            idempotency_key="k",
            metadata={},
        )
    assert (excinfo.value.code, excinfo.value.decline_code) == ("card_declined", "insufficient_funds")


def test_off_session_charge_needing_authentication(provider: StripeProvider) -> None:
    with pytest.raises(PaymentDeclined) as excinfo:
        provider.charge_off_session(
            customer_ref="cus_123",
            payment_method_ref="pm_card_authenticationRequired",
            amount_minor=750,
            currency="eur",
            idempotency_key="k",
            metadata={},
        )
    assert excinfo.value.code == "authentication_required"
    assert excinfo.value.requires_customer_action is True


def test_on_session_authentication_leaves_payment_requiring_action(provider: StripeProvider, stub: StripeStub) -> None:
    payment = _create(provider)
    assert stub.confirm_payment_intent(payment.id, "pm_card_authenticationRequired") == PAYMENT_REQUIRES_ACTION
    assert provider.retrieve_payment(payment.id).status == PAYMENT_REQUIRES_ACTION


# --------------------------------------------------------------------------------------------------
# StripeProvider: gateway failures, retries, configuration errors
# --------------------------------------------------------------------------------------------------


def test_5xx_is_retried_by_the_library_with_the_same_idempotency_key(
    provider: StripeProvider, stub: StripeStub, retry_sleeps: list[int]
) -> None:
    stub.fail_next(2, status=500)

    payment = _create(provider, "booking-42-payment")

    posts = _posts(stub)
    assert [r.status for r in posts] == [500, 500, 200]
    assert {r.idempotency_key for r in posts} == {"booking-42-payment"}
    assert [r.params["amount"] for r in posts] == ["2500", "2500", "2500"]
    assert retry_sleeps == [1, 2]
    assert list(stub.payment_intents) == [payment.id]


def test_persistent_5xx_raises_gateway_error_then_same_key_succeeds_later(
    provider: StripeProvider, stub: StripeStub
) -> None:
    stub.fail_next(3, status=503)

    with pytest.raises(PaymentGatewayError) as excinfo:
        _create(provider, "booking-42-payment")

    assert excinfo.value.retryable is True
    assert excinfo.value.http_status == 503
    assert [r.status for r in _posts(stub)] == [503, 503, 503]  # 1 try + max_network_retries=2
    assert stub.payment_intents == {}

    # The caller (e.g. a Celery retry) tries again later with the SAME key.
    payment = _create(provider, "booking-42-payment")
    assert list(stub.payment_intents) == [payment.id]
    assert {r.idempotency_key for r in _posts(stub)} == {"booking-42-payment"}


def test_dropped_connections_are_retried_then_reported_as_gateway_error(
    provider: StripeProvider, stub: StripeStub
) -> None:
    stub.drop_next(1)
    payment = _create(provider, "booking-42-payment")
    assert [r.status for r in _posts(stub)] == [None, 200]
    assert list(stub.payment_intents) == [payment.id]

    stub.drop_next(3)
    with pytest.raises(PaymentGatewayError) as excinfo:
        provider.retrieve_payment(payment.id)
    assert excinfo.value.retryable is True
    assert isinstance(excinfo.value.__cause__, stripe.APIConnectionError)
    assert [r.status for r in stub.requests_to("GET", f"/v1/payment_intents/{payment.id}")] == [None] * 3


def test_timeout_after_stripe_processed_the_request_does_not_create_a_duplicate(
    stub: StripeStub, retry_sleeps: list[int]
) -> None:
    provider = StripeProvider(stub.api_key, api_base=stub.url, timeout_seconds=0.5, max_network_retries=2)
    stub.delay_next(1, seconds=2.0)  # Stripe creates the intent, but the answer arrives too late

    payment = _create(provider, "booking-42-payment")

    posts = _posts(stub)
    assert len(posts) == 2
    assert {r.idempotency_key for r in posts} == {"booking-42-payment"}
    assert [r.replayed for r in posts] == [False, True]
    assert list(stub.payment_intents) == [payment.id]


def test_timeout_without_retries_is_a_gateway_error(stub: StripeStub) -> None:
    provider = StripeProvider(stub.api_key, api_base=stub.url, timeout_seconds=0.3, max_network_retries=0)
    stub.delay_next(1, seconds=2.0)

    started = time.monotonic()
    with pytest.raises(PaymentGatewayError):
        _create(provider)
    assert time.monotonic() - started < 1.5
    assert len(stub.requests) == 1


def test_rate_limit_is_a_gateway_error(provider: StripeProvider, stub: StripeStub) -> None:
    stub.fail_next(1, status=429)
    with pytest.raises(PaymentGatewayError) as excinfo:
        _create(provider)
    assert excinfo.value.http_status == 429
    assert excinfo.value.code == "rate_limit"
    assert len(stub.requests) == 1  # the library does not retry 429s by itself


def test_wrong_api_key_is_a_configuration_error(stub: StripeStub, retry_sleeps: list[int]) -> None:
    provider = StripeProvider("sk_test_wrong_key_999", api_base=stub.url)

    with pytest.raises(PaymentConfigurationError) as excinfo:
        _create(provider)

    assert excinfo.value.http_status == 401
    assert excinfo.value.retryable is False
    assert isinstance(excinfo.value.__cause__, stripe.AuthenticationError)
    (request,) = stub.requests  # not retried
    assert request.api_key == "sk_test_wrong_key_999"
    assert stub.payment_intents == {}


@pytest.mark.parametrize("key", ["", "   ", "pk_test_publishable"])
def test_unusable_api_key_is_rejected_at_construction(key: str) -> None:
    with pytest.raises(PaymentConfigurationError):
        StripeProvider(key)


def test_repr_does_not_leak_the_api_key(stub: StripeStub) -> None:
    provider = StripeProvider(stub.api_key, api_base=stub.url)
    assert stub.api_key not in repr(provider)
    assert provider.name == "stripe"


def test_stub_rejected_parameters_map_to_configuration_error(stub: StripeStub) -> None:
    # Bypass our own validation to prove the stub checks what Stripe checks.
    client = stripe.StripeClient(stub.api_key, base_addresses={"api": stub.url}, max_network_retries=0)

    with pytest.raises(stripe.InvalidRequestError) as float_amount:
        client.v1.payment_intents.create(
            {"amount": 25.5, "currency": "eur"},  # type: ignore[typeddict-item]
            options={"idempotency_key": "k1"},
        )
    assert float_amount.value.code == "parameter_invalid_integer"
    assert float_amount.value.param == "amount"
    translated = translate_stripe_error(float_amount.value)
    assert type(translated) is PaymentConfigurationError
    assert translated.code == "parameter_invalid_integer"

    with pytest.raises(stripe.InvalidRequestError) as upper_currency:
        client.v1.payment_intents.create({"amount": 2500, "currency": "EUR"}, options={"idempotency_key": "k2"})
    assert upper_currency.value.param == "currency"

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.payment_intents.create(
            {"amount": 2500, "currency": "eur", "amout": 1},  # type: ignore[typeddict-unknown-key]
            options={"idempotency_key": "k3"},
        )
    assert unknown.value.code == "parameter_unknown"
    assert stub.payment_intents == {}


def test_stub_requires_idempotency_key_and_api_key(stub: StripeStub) -> None:
    url = f"{stub.url}/v1/payment_intents"
    body = {"amount": "2500", "currency": "eur"}

    no_key = requests.post(url, data=body, headers={"Authorization": f"Bearer {stub.api_key}"}, timeout=5)
    assert no_key.status_code == 400
    assert no_key.json()["error"]["type"] == "invalid_request_error"

    no_auth = requests.post(url, data=body, headers={"Idempotency-Key": "k"}, timeout=5)
    assert no_auth.status_code == 401

    basic = requests.post(url, data=body, headers={"Idempotency-Key": "k"}, auth=(stub.api_key, ""), timeout=5)
    assert basic.status_code == 200
    assert basic.json()["object"] == "payment_intent"
    assert basic.json()["amount"] == 2500
    assert stub.requests[-1].auth_scheme == "Basic"

    replay = requests.post(url, data=body, headers={"Idempotency-Key": "k"}, auth=(stub.api_key, ""), timeout=5)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == basic.json()["id"]


# --------------------------------------------------------------------------------------------------
# Webhooks
# --------------------------------------------------------------------------------------------------


def _event_payload() -> bytes:
    event = {
        "id": "evt_1",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": 1_760_000_000,
        "livemode": False,
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": "pi_1",
                "object": "payment_intent",
                "amount": 2500,
                "currency": "eur",
                "status": "succeeded",
                "metadata": {"booking_id": "42"},
            }
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def test_webhook_signature_roundtrip() -> None:
    payload = _event_payload()
    header = sign_stripe_payload(payload, WEBHOOK_SECRET)

    event = parse_stripe_event(payload, header, WEBHOOK_SECRET)

    assert isinstance(event, stripe.Event)
    assert event.id == "evt_1"
    assert event.type == "payment_intent.succeeded"
    assert event.data.object["id"] == "pi_1"
    assert event.data.object["amount"] == 2500
    assert event.data.object["metadata"]["booking_id"] == "42"
    # The official verifier accepts our header as well.
    assert stripe.Webhook.construct_event(payload, header, WEBHOOK_SECRET).id == "evt_1"


def test_sign_stripe_payload_matches_stripes_algorithm() -> None:
    payload = _event_payload()
    header = sign_stripe_payload(payload, WEBHOOK_SECRET, timestamp=1_760_000_000)

    expected = hmac.new(WEBHOOK_SECRET.encode(), b"1760000000." + payload, hashlib.sha256).hexdigest()
    assert header == f"t=1760000000,v1={expected}"
    assert header == stripe.WebhookSignature.generate_signature_header(
        payload.decode(), WEBHOOK_SECRET, timestamp=1_760_000_000
    )


def test_tampered_payload_is_rejected() -> None:
    payload = _event_payload()
    header = sign_stripe_payload(payload, WEBHOOK_SECRET)
    tampered = payload.replace(b'"amount":2500', b'"amount":1')
    assert tampered != payload

    with pytest.raises(InvalidWebhook):
        parse_stripe_event(tampered, header, WEBHOOK_SECRET)


def test_old_timestamp_is_rejected() -> None:
    payload = _event_payload()
    old = sign_stripe_payload(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)

    with pytest.raises(InvalidWebhook, match="tolerance"):
        parse_stripe_event(payload, old, WEBHOOK_SECRET)
    # Within the tolerance it is accepted.
    recent = sign_stripe_payload(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 200)
    assert parse_stripe_event(payload, recent, WEBHOOK_SECRET).id == "evt_1"


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=notanumber,v1=abc", "t=1760000000", "v1=deadbeef"],
)
def test_malformed_signature_header_is_rejected(header: str | None) -> None:
    with pytest.raises(InvalidWebhook):
        parse_stripe_event(_event_payload(), header, WEBHOOK_SECRET)


def test_wrong_secret_is_rejected() -> None:
    payload = _event_payload()
    header = sign_stripe_payload(payload, "whsec_other")
    with pytest.raises(InvalidWebhook):
        parse_stripe_event(payload, header, WEBHOOK_SECRET)


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"no": "event"}', b"\xff\xfe"])
def test_correctly_signed_garbage_is_rejected(payload: bytes) -> None:
    header = sign_stripe_payload(payload, WEBHOOK_SECRET)
    with pytest.raises(InvalidWebhook):
        parse_stripe_event(payload, header, WEBHOOK_SECRET)


def test_missing_webhook_secret_is_a_configuration_error() -> None:
    payload = _event_payload()
    with pytest.raises(PaymentConfigurationError):
        parse_stripe_event(payload, sign_stripe_payload(payload, WEBHOOK_SECRET), "")


# --------------------------------------------------------------------------------------------------
# OfflineProvider
# --------------------------------------------------------------------------------------------------


def test_offline_create_payment() -> None:
    provider = OfflineProvider()
    payment = _create(provider, currency="EUR")

    assert provider.name == "offline"
    assert re.fullmatch(r"off_pi_[0-9a-f]{24}", payment.id)
    assert payment.client_secret is not None
    assert re.fullmatch(rf"{payment.id}_secret_[0-9a-f]{{24}}", payment.client_secret)
    assert payment.status == PAYMENT_REQUIRES_PAYMENT_METHOD
    assert (payment.amount_minor, payment.currency) == (2500, "eur")
    assert _create(provider, "other-key").id != payment.id


def test_both_providers_satisfy_the_protocol(stub: StripeStub) -> None:
    assert isinstance(OfflineProvider(), PaymentProvider)
    assert isinstance(StripeProvider(stub.api_key, api_base=stub.url), PaymentProvider)


def test_offline_confirm_outcomes() -> None:
    provider = OfflineProvider()
    paid = _create(provider, "k1")
    assert provider.confirm(paid.id, "pm_card_visa") == PAYMENT_SUCCEEDED
    assert provider.retrieve_payment(paid.id).status == PAYMENT_SUCCEEDED
    assert provider.confirm(paid.id, "pm_card_visa") == PAYMENT_SUCCEEDED  # double submit is harmless

    declined = _create(provider, "k2")
    with pytest.raises(PaymentDeclined) as excinfo:
        provider.confirm(declined.id, "pm_card_chargeDeclined")
    assert excinfo.value.code == "card_declined"
    assert excinfo.value.decline_code == "card_declined"
    assert excinfo.value.provider_payment_id == declined.id
    assert provider.retrieve_payment(declined.id).status == PAYMENT_REQUIRES_PAYMENT_METHOD

    with pytest.raises(UnsupportedTestPaymentMethod, match="pm_card_visa") as unknown:
        provider.confirm(declined.id, "pm_card_mastercard")
    assert isinstance(unknown.value, ValueError)


def test_offline_outcomes_do_not_depend_on_shared_state() -> None:
    created_by = OfflineProvider()
    payment = _create(created_by)

    # A different instance (another worker process, a new request) gives the same outcomes.
    other = OfflineProvider()
    assert other.confirm(payment.id, "pm_card_visa") == PAYMENT_SUCCEEDED
    with pytest.raises(PaymentDeclined):
        other.confirm(payment.id, "pm_card_chargeDeclined")
    refund = other.refund(provider_payment_id=payment.id, amount_minor=500, idempotency_key="r")
    assert (refund.status, refund.amount_minor, refund.currency) == ("succeeded", 500, "eur")
    assert other.cancel_payment(payment.id, "c") == PAYMENT_CANCELED
    # ...but it cannot report a payment it never saw: the app's own DB is the source of truth.
    with pytest.raises(PaymentConfigurationError) as excinfo:
        other.retrieve_payment(payment.id)
    assert excinfo.value.code == "resource_missing"


def test_offline_provider_forgets_its_oldest_payments_beyond_what_it_remembers() -> None:
    provider = OfflineProvider(remember=2)
    first, second, third = (_create(provider, idempotency_key=f"key-{n}") for n in range(3))
    with pytest.raises(PaymentConfigurationError):
        provider.retrieve_payment(first.id)
    assert [provider.retrieve_payment(p.id).id for p in (second, third)] == [second.id, third.id]
    assert _create(provider, idempotency_key="key-2") == third  # a remembered key still replays
    assert _create(provider, idempotency_key="key-0").id != first.id  # a forgotten one is new, as at Stripe
    # Outcomes never needed the memory.
    assert provider.confirm(first.id, "pm_card_visa") == PAYMENT_SUCCEEDED
    with pytest.raises(ValueError, match="remember"):
        OfflineProvider(remember=0)


def test_offline_refund() -> None:
    provider = OfflineProvider()
    payment = _create(provider)
    provider.confirm(payment.id, "pm_card_visa")

    refund = provider.refund(
        provider_payment_id=payment.id,
        amount_minor=1000,
        idempotency_key="booking-42-refund-1",
        reason="requested_by_customer",
    )

    assert re.fullmatch(r"off_re_[0-9a-f]{24}", refund.id)
    assert refund == ProviderRefund(id=refund.id, status="succeeded", amount_minor=1000, currency="eur")
    again = provider.refund(
        provider_payment_id=payment.id,
        amount_minor=1000,
        idempotency_key="booking-42-refund-1",
        reason="requested_by_customer",
    )
    assert again == refund
    with pytest.raises(InvalidPaymentRequest):
        provider.refund(provider_payment_id=payment.id, amount_minor=2501, idempotency_key="r2")
    with pytest.raises(InvalidPaymentRequest):
        provider.refund(provider_payment_id=payment.id, amount_minor=10.0, idempotency_key="r3")  # type: ignore[arg-type]


def test_offline_idempotency() -> None:
    provider = OfflineProvider()
    first = _create(provider, "k")
    assert _create(provider, "k") == first
    with pytest.raises(IdempotencyConflict):
        _create(provider, "k", amount_minor=2600)


def test_offline_off_session_charges() -> None:
    provider = OfflineProvider()
    common = {"customer_ref": "cus_1", "amount_minor": 750, "currency": "eur", "metadata": {"booking_id": "42"}}

    charged = provider.charge_off_session(payment_method_ref="pm_card_visa", idempotency_key="a", **common)  # type: ignore[arg-type]
    assert charged.status == PAYMENT_SUCCEEDED
    assert charged.id.startswith("off_pi_")
    assert (charged.amount_minor, charged.currency) == (750, "eur")

    with pytest.raises(PaymentDeclined) as declined:
        provider.charge_off_session(payment_method_ref="pm_card_chargeDeclined", idempotency_key="b", **common)  # type: ignore[arg-type]
    assert declined.value.code == "card_declined"

    with pytest.raises(PaymentDeclined) as auth:
        provider.charge_off_session(
            payment_method_ref="pm_card_authenticationRequired",
            idempotency_key="c",
            **common,  # type: ignore[arg-type]
        )
    assert auth.value.requires_customer_action is True

    with pytest.raises(UnsupportedTestPaymentMethod):
        provider.charge_off_session(payment_method_ref="pm_whatever", idempotency_key="d", **common)  # type: ignore[arg-type]


def test_offline_cancel() -> None:
    provider = OfflineProvider()
    open_payment = _create(provider, "k1")
    assert provider.cancel_payment(open_payment.id, "c1") == PAYMENT_CANCELED
    assert provider.retrieve_payment(open_payment.id).status == PAYMENT_CANCELED
    with pytest.raises(PaymentConfigurationError):
        provider.confirm(open_payment.id, "pm_card_visa")

    paid = _create(provider, "k2")
    provider.confirm(paid.id, "pm_card_visa")
    with pytest.raises(PaymentConfigurationError):
        provider.cancel_payment(paid.id, "c2")


def test_offline_rejects_foreign_ids_and_bad_money() -> None:
    provider = OfflineProvider()
    with pytest.raises(InvalidPaymentRequest):
        provider.confirm("pi_from_stripe", "pm_card_visa")
    with pytest.raises(InvalidPaymentRequest):
        _create(provider, amount_minor=25.0)
    with pytest.raises(InvalidPaymentRequest):
        _create(provider, currency="euro")


# --------------------------------------------------------------------------------------------------
# Packaging
# --------------------------------------------------------------------------------------------------


def test_results_are_frozen() -> None:
    payment = _create(OfflineProvider())
    with pytest.raises(AttributeError):
        payment.amount_minor = 1  # type: ignore[misc]


def test_importing_payments_does_not_import_django() -> None:
    code = "import sys, bookings.payments; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
