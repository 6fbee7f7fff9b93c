"""Bookings paid through Stripe: the real ``stripe`` library against the loopback stub, and signed webhooks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from bookings.models import (
    Booking,
    BookingStatus,
    CapacitySlot,
    DriverMessage,
    Payment,
    PaymentStatus,
    Refund,
    WebhookEvent,
)
from bookings.payments.webhooks import sign_stripe_payload
from bookings.services import holds_expire
from tests.bookings.helpers import future_window, post_booking
from tests.factories import CarParkFactory
from tests.stripe_stub import StripeStub

WEBHOOK_SECRET = "whsec_test_0123456789abcdef"
WEBHOOK_URL = "/api/v1/payments/stripe/webhook"


@pytest.fixture
def stub(settings: Any) -> Iterator[StripeStub]:
    with StripeStub() as running:
        settings.PAYMENT_PROVIDER = "stripe"
        settings.STRIPE_SECRET_KEY = running.api_key
        settings.STRIPE_API_BASE = running.url
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        yield running


def event_for(stub: StripeStub, event_id: str, event_type: str, intent_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": stub.payment_intents[intent_id]},
    }


def deliver(event: dict[str, Any], secret: str = WEBHOOK_SECRET) -> Any:
    payload = json.dumps(event).encode()
    return APIClient().post(
        WEBHOOK_URL,
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign_stripe_payload(payload, secret),
    )


@pytest.mark.django_db
def test_a_hold_creates_a_payment_intent_with_our_amount_currency_and_key(api, driver, car_park, stub):
    start, end = future_window(hours=2)
    body = post_booking(api(driver), driver, car_park, start, end).json()
    assert body["payment"]["provider"] == "stripe"
    assert body["payment"]["client_secret"].startswith("pi_")
    created = stub.requests_to("POST", "/v1/payment_intents")
    assert len(created) == 1
    payment = Payment.objects.get()
    assert created[0].params["amount"] == str(body["amount_minor"]) == "500"
    assert created[0].params["currency"] == "gbp"
    assert created[0].idempotency_key == payment.idempotency_key
    assert created[0].params["metadata"]["payment_id"] == str(payment.pk)
    assert created[0].status == 200


@pytest.mark.django_db
def test_a_provider_outage_holds_nothing_and_answers_503(api, driver, car_park, stub):
    stub.fail_next(10, status=503)
    start, end = future_window()
    response = post_booking(api(driver), driver, car_park, start, end)
    assert response.status_code == 503
    assert response.json()["code"] == "payment_provider_unavailable"
    assert Booking.objects.get().status == BookingStatus.EXPIRED  # kept for the record, bay given back
    assert not CapacitySlot.objects.filter(reserved__gt=0).exists()


@pytest.mark.django_db(transaction=True)
def test_webhooks_delivered_five_times_out_of_order_confirm_once(api, driver, car_park, stub):
    start, end = future_window()
    body = post_booking(api(driver), driver, car_park, start, end).json()
    intent_id = Payment.objects.get().provider_payment_id
    stub.confirm_payment_intent(intent_id, "pm_card_chargeDeclined")
    failed = event_for(stub, "evt_failed", "payment_intent.payment_failed", intent_id)
    stub.confirm_payment_intent(intent_id, "pm_card_visa")
    succeeded = event_for(stub, "evt_succeeded", "payment_intent.succeeded", intent_id)

    deliveries = [succeeded, failed, succeeded, failed, succeeded]

    def send(event: dict[str, Any]) -> int:
        try:
            return deliver(event).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = list(pool.map(send, deliveries))

    assert statuses == [200] * 5
    payment = Payment.objects.get()
    assert payment.status == PaymentStatus.SUCCEEDED
    booking = Booking.objects.get(pk=body["id"])
    assert booking.status == BookingStatus.CONFIRMED
    assert WebhookEvent.objects.count() == 2
    assert DriverMessage.objects.filter(kind="confirmation").count() == 1
    assert DriverMessage.objects.get(kind="confirmation").sent_at is not None
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_a_bad_signature_is_400_and_stores_nothing(api, driver, car_park, stub):
    start, end = future_window()
    post_booking(api(driver), driver, car_park, start, end)
    intent_id = Payment.objects.get().provider_payment_id
    stub.confirm_payment_intent(intent_id)
    event = event_for(stub, "evt_1", "payment_intent.succeeded", intent_id)
    response = deliver(event, secret="whsec_wrong")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_signature"
    unsigned = APIClient().post(WEBHOOK_URL, data=json.dumps(event), content_type="application/json")
    assert unsigned.status_code == 400
    assert not WebhookEvent.objects.exists()
    assert Payment.objects.get().status == PaymentStatus.PENDING


@pytest.mark.django_db(transaction=True)
def test_a_payment_after_expiry_retakes_a_free_bay(api, driver, car_park, stub, time_machine):
    start, end = future_window()
    post_booking(api(driver), driver, car_park, start, end)
    intent_id = Payment.objects.get().provider_payment_id
    time_machine.move_to(start - timedelta(hours=20), tick=False)
    assert holds_expire() == 1
    stub.confirm_payment_intent(intent_id)
    assert deliver(event_for(stub, "evt_late", "payment_intent.succeeded", intent_id)).status_code == 200
    assert Booking.objects.get().status == BookingStatus.CONFIRMED
    assert not Refund.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_payment_after_expiry_is_refunded_when_the_bay_is_gone(api, driver, other_driver, stub, time_machine):
    car_park = CarParkFactory(standard_bays=1)
    start, end = future_window()
    post_booking(api(driver), driver, car_park, start, end)
    intent_id = Payment.objects.get().provider_payment_id
    time_machine.move_to(start - timedelta(hours=20), tick=False)
    assert post_booking(api(other_driver), other_driver, car_park, start, end).status_code == 201
    stub.confirm_payment_intent(intent_id)
    assert deliver(event_for(stub, "evt_late", "payment_intent.succeeded", intent_id)).status_code == 200
    first = Booking.objects.get(driver=driver)
    assert first.status == BookingStatus.EXPIRED
    refund = Refund.objects.get()
    assert refund.amount_minor == first.amount_minor
    assert refund.status == "succeeded"
    refund_calls = stub.requests_to("POST", "/v1/refunds")
    assert [call.params["payment_intent"] for call in refund_calls] == [intent_id]
    assert refund_calls[0].params["amount"] == str(first.amount_minor)


@pytest.mark.django_db(transaction=True)
def test_a_declined_off_session_overstay_stays_payable_in_the_app_whatever_the_webhooks_say(
    driver, car_park, stub, time_machine
):
    """Stripe reports the declined off-session intent as payment_failed, with our payment's id in
    its metadata: that must not fail the overstay, whose app intent the driver still has to pay."""
    from bookings.gate import gate_entry_record, gate_exit_record
    from bookings.models import PaymentKind, SavedCard
    from tests.conftest import client_for

    start, end = future_window()
    post_booking(client_for(driver), driver, car_park, start, end)
    paid_intent = Payment.objects.get().provider_payment_id
    stub.confirm_payment_intent(paid_intent, "pm_card_visa")
    assert deliver(event_for(stub, "evt_paid", "payment_intent.succeeded", paid_intent)).status_code == 200
    booking = Booking.objects.get()
    SavedCard.objects.create(
        driver=driver, provider="stripe", customer_ref="cus_test", payment_method_ref="pm_card_chargeDeclined"
    )
    time_machine.move_to(booking.start, tick=False)
    gate_entry_record(car_park=car_park, code=booking.code, occurred_at=booking.start)
    time_machine.move_to(booking.end + timedelta(hours=1), tick=False)
    gate_exit_record(car_park=car_park, code=booking.code, occurred_at=booking.end + timedelta(hours=1))

    overstay = Payment.objects.get(kind=PaymentKind.OVERSTAY)
    app_intent = overstay.provider_payment_id
    (declined_intent,) = set(stub.payment_intents) - {paid_intent, app_intent}
    assert stub.payment_intents[declined_intent]["metadata"]["payment_id"] == str(overstay.pk)
    response = deliver(event_for(stub, "evt_declined", "payment_intent.payment_failed", declined_intent))
    assert response.json()["outcome"] == "attempt failed"
    overstay.refresh_from_db()
    assert (overstay.status, overstay.failure_code) == (PaymentStatus.PENDING, "generic_decline")
    shown = client_for(driver).get(f"/api/v1/bookings/{booking.pk}").json()
    (shown_overstay,) = [p for p in shown["payments"] if p["kind"] == "overstay"]
    assert shown_overstay["client_secret"].startswith(app_intent)

    stub.confirm_payment_intent(app_intent, "pm_card_visa")
    deliver(event_for(stub, "evt_overstay_paid", "payment_intent.succeeded", app_intent))
    overstay.refresh_from_db()
    assert overstay.status == PaymentStatus.SUCCEEDED


@pytest.mark.django_db
def test_a_success_matched_by_metadata_keeps_the_intent_so_it_can_be_refunded(driver, car_park, stub):
    """An off-session charge whose answer was lost succeeds at Stripe before we stored its id."""
    from tests.conftest import client_for

    start, end = future_window()
    payment_intent_id = "pi_lost_answer"
    post_booking(client_for(driver), driver, car_park, start, end)
    payment = Payment.objects.get()
    Payment.objects.filter(pk=payment.pk).update(provider_payment_id=None)
    event = {
        "id": "evt_lost_answer",
        "object": "event",
        "type": "payment_intent.succeeded",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "data": {
            "object": {"id": payment_intent_id, "object": "payment_intent", "metadata": {"payment_id": str(payment.pk)}}
        },
    }
    assert deliver(event).json()["outcome"] == "payment succeeded"
    payment.refresh_from_db()
    assert (payment.status, payment.provider_payment_id) == (PaymentStatus.SUCCEEDED, payment_intent_id)
