"""The booking lifecycle over HTTP: hold, pay offline, read, extend, cancel; availability and quotes."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.core import mail

from bookings import services
from bookings.models import Booking, BookingStatus, CapacitySlot, Payment, PaymentStatus, Refund
from tests.bookings.helpers import confirmed, future_window, hold, post_booking, vehicle_of
from tests.factories import CarParkFactory

pytestmark = pytest.mark.django_db


def test_hold_answers_the_documented_shape(api, driver, car_park):
    start, end = future_window(hours=2)
    response = post_booking(api(driver), driver, car_park, start, end, key="k-1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "held"
    assert body["car_park"] == car_park.pk
    assert body["vehicle"] == vehicle_of(driver).pk
    assert body["bay_type"] == "standard"
    assert body["amount_minor"] == 500  # default card: 2.50/h for 2 h
    assert body["currency"] == "GBP"
    assert body["hold_expires_at"]
    assert set(body["payment"]) >= {"id", "provider", "client_secret"}
    assert body["payment"]["provider"] == "offline"
    assert body["payment"]["client_secret"]
    assert response["Location"] == f"/api/v1/bookings/{body['id']}"


def test_a_client_sent_amount_is_ignored(api, driver, car_park):
    start, end = future_window(hours=2)
    response = post_booking(api(driver), driver, car_park, start, end, amount_minor=1)
    assert response.json()["amount_minor"] == 500


@pytest.mark.django_db(transaction=True)  # e-mails and refunds are queued on commit
def test_offline_confirmation_confirms_and_e_mails_once(api, driver, car_park):
    start, end = future_window()
    client = api(driver)
    booking = post_booking(client, driver, car_park, start, end).json()
    url = f"/api/v1/payments/offline/{booking['payment']['id']}/confirm"
    first = client.post(url, {"payment_method": "pm_card_visa"}, format="json")
    again = client.post(url, {"payment_method": "pm_card_visa"}, format="json")
    assert first.status_code == again.status_code == 200
    assert first.json()["booking"]["status"] == "confirmed"
    detail = client.get(f"/api/v1/bookings/{booking['id']}").json()
    assert detail["status"] == "confirmed"
    assert len(detail["code"]) == 8
    assert [m.subject for m in mail.outbox] == [f"Your parking at {car_park.name} is booked"]
    assert Payment.objects.get().status == PaymentStatus.SUCCEEDED


def test_a_declined_card_keeps_the_hold_and_another_card_can_pay(api, driver, car_park):
    start, end = future_window()
    client = api(driver)
    booking = post_booking(client, driver, car_park, start, end).json()
    url = f"/api/v1/payments/offline/{booking['payment']['id']}/confirm"
    declined = client.post(url, {"payment_method": "pm_card_chargeDeclined"}, format="json")
    assert declined.status_code == 402
    assert declined.json()["code"] == "card_declined"
    assert Booking.objects.get().status == BookingStatus.HELD
    assert client.post(url, {"payment_method": "pm_card_visa"}, format="json").status_code == 200
    assert Booking.objects.get().status == BookingStatus.CONFIRMED


def test_offline_confirm_refuses_an_unknown_method_and_another_drivers_payment(api, driver, other_driver, car_park):
    start, end = future_window()
    booking = post_booking(api(driver), driver, car_park, start, end).json()
    url = f"/api/v1/payments/offline/{booking['payment']['id']}/confirm"
    assert api(driver).post(url, {"payment_method": "cash"}, format="json").status_code == 400
    assert api(other_driver).post(url, {"payment_method": "pm_card_visa"}, format="json").status_code == 404


def test_offline_confirm_does_not_exist_with_stripe(api, driver, car_park, settings):
    start, end = future_window()
    booking = post_booking(api(driver), driver, car_park, start, end).json()
    settings.PAYMENT_PROVIDER = "stripe"
    url = f"/api/v1/payments/offline/{booking['payment']['id']}/confirm"
    assert api(driver).post(url, {"payment_method": "pm_card_visa"}, format="json").status_code == 404


def test_window_full_is_409(api, driver, other_driver):
    car_park = CarParkFactory(standard_bays=1)
    start, end = future_window()
    assert post_booking(api(driver), driver, car_park, start, end).status_code == 201
    response = post_booking(api(other_driver), other_driver, car_park, start + timedelta(hours=1), end)
    assert response.status_code == 409
    assert response.json()["code"] == "window_full"
    assert Booking.objects.count() == 1


def test_unpaid_hold_limit(api, driver, car_park, settings):
    client = api(driver)
    for day in range(settings.BOOKING_MAX_UNPAID_HOLDS):
        start, end = future_window(days=2 + day)
        assert post_booking(client, driver, car_park, start, end).status_code == 201
    start, end = future_window(days=9)
    response = post_booking(client, driver, car_park, start, end)
    assert response.status_code == 409
    assert response.json()["code"] == "unpaid_hold_limit"


def test_expired_holds_give_capacity_back_lazily(api, driver, other_driver, time_machine):
    car_park = CarParkFactory(standard_bays=1)
    start, end = future_window()
    assert post_booking(api(driver), driver, car_park, start, end).status_code == 201
    time_machine.move_to(start - timedelta(days=1), tick=False)
    availability = api(None).get(
        f"/api/v1/carparks/{car_park.pk}/availability", {"start": start.isoformat(), "end": end.isoformat()}
    )
    assert availability.json()["available"] == 1
    assert Booking.objects.get().status == BookingStatus.EXPIRED


def test_availability_answers_the_documented_shape(api, driver, car_park):
    start, end = future_window()
    hold(driver, car_park, start, end)
    response = api(None).get(
        f"/api/v1/carparks/{car_park.pk}/availability",
        {"start": start.isoformat(), "end": end.isoformat(), "bay_type": "standard"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "car_park": car_park.pk,
        "start": body["start"],
        "end": body["end"],
        "bay_type": "standard",
        "capacity": 90,
        "available": 89,
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2030-01-01T10:00:00", "end": "2030-01-01T12:00:00Z"}, "start"),
        ({"start": "2030-01-01T10:00:00Z"}, "end"),
        ({"start": "2030-01-01T12:00:00Z", "end": "2030-01-01T10:00:00Z"}, "end"),
        ({"start": "2030-01-01T10:00:00Z", "end": "2030-01-01T12:00:00Z", "bay_type": "lorry"}, "bay_type"),
    ],
)
def test_availability_rejects_bad_windows(api, car_park, params, field):
    response = api(None).get(f"/api/v1/carparks/{car_park.pk}/availability", params)
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]


def test_quote_answers_the_documented_shape(api, car_park):
    start, end = future_window(hours=3)
    response = api(None).get(
        f"/api/v1/carparks/{car_park.pk}/quote", {"start": start.isoformat(), "end": end.isoformat()}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {
        "car_park",
        "start",
        "end",
        "amount_minor",
        "currency",
        "lines",
        "cancellation_policy",
        "valid_until",
    }
    assert body["amount_minor"] == 750
    assert body["cancellation_policy"]["free_cancellation_hours"] == 24


def test_search_with_a_window_adds_availability_and_price_without_a_query_per_car_park(
    api, car_park, driver, django_assert_max_num_queries
):
    for index in range(5):
        CarParkFactory(company=car_park.company, name=f"Extra {index}")
    start, end = future_window()
    hold(driver, car_park, start, end)
    params = {"lat": 52.4797, "lng": -1.9026, "start": start.isoformat(), "end": end.isoformat()}
    with django_assert_max_num_queries(12):
        response = api(None).get("/api/v1/carparks", params)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert len(rows) == 6
    ours = next(row for row in rows if row["id"] == car_park.pk)
    assert ours["availability"]["available"] == 89
    assert ours["quote"] == {"amount_minor": 500, "currency": "GBP"}


def test_drivers_see_only_their_own_bookings(api, driver, other_driver, car_park):
    start, end = future_window()
    mine = hold(driver, car_park, start, end)
    theirs = hold(other_driver, car_park, start, end)
    listed = api(driver).get("/api/v1/bookings").json()["results"]
    assert [row["id"] for row in listed] == [mine.pk]
    assert api(driver).get(f"/api/v1/bookings/{theirs.pk}").status_code == 404
    other = api(driver)
    end_later = (end + timedelta(hours=1)).isoformat()
    assert other.post(f"/api/v1/bookings/{theirs.pk}/extend", {"end": end_later}, format="json").status_code == 404
    assert other.post(f"/api/v1/bookings/{theirs.pk}/cancel").status_code == 404
    assert Booking.objects.get(pk=theirs.pk).status == BookingStatus.HELD


def test_bookings_filter_by_start_with_an_offset_and_refuse_a_naive_one(api, driver, car_park):
    start, end = future_window(days=2)
    early = hold(driver, car_park, start, end)
    later = hold(driver, car_park, start + timedelta(days=1), end + timedelta(days=1))
    client = api(driver)
    cut = (start + timedelta(hours=12)).isoformat()
    assert [row["id"] for row in client.get("/api/v1/bookings", {"starts_after": cut}).json()["results"]] == [later.pk]
    assert [row["id"] for row in client.get("/api/v1/bookings", {"starts_before": cut}).json()["results"]] == [early.pk]
    for bad in ("2026-12-01T08:00:00", "2026-02-30T08:00:00Z"):  # naive; no such day
        refused = client.get("/api/v1/bookings", {"starts_after": bad})
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["field"] == "starts_after"


def test_operators_see_only_bookings_at_their_car_parks(
    api, driver, operator, other_operator, car_park, other_car_park
):
    start, end = future_window()
    ours = hold(driver, car_park, start, end)
    hold(driver, other_car_park, start + timedelta(days=1), end + timedelta(days=1))
    listed = api(operator).get("/api/v1/bookings").json()["results"]
    assert [row["id"] for row in listed] == [ours.pk]
    assert api(other_operator).get(f"/api/v1/bookings/{ours.pk}").status_code == 404
    assert api(operator).post("/api/v1/bookings/{ours.pk}/cancel").status_code in (403, 404)


@pytest.mark.django_db(transaction=True)  # e-mails and refunds are queued on commit
def test_cancel_early_refunds_in_full_and_frees_the_bay(api, driver, car_park):
    start, end = future_window(days=3)
    booking = confirmed(driver, car_park, start, end)
    response = api(driver).post(f"/api/v1/bookings/{booking.pk}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["refunded_minor"] == booking.amount_minor
    assert Refund.objects.get().status == "succeeded"
    assert not CapacitySlot.objects.filter(reserved__gt=0).exists()
    assert any("refund" in message.subject.lower() for message in mail.outbox)
    assert api(driver).post(f"/api/v1/bookings/{booking.pk}/cancel").status_code == 409


def test_late_cancel_refunds_the_policy_share(api, driver, car_park, time_machine):
    start, end = future_window(days=3)
    booking = confirmed(driver, car_park, start, end)
    time_machine.move_to(start - timedelta(hours=2), tick=False)
    body = api(driver).post(f"/api/v1/bookings/{booking.pk}/cancel").json()
    assert body["refunded_minor"] == booking.amount_minor // 2


def test_a_booking_keeps_the_cancellation_rule_it_was_quoted(api, operator, driver):
    car_park = CarParkFactory(company=operator.company)  # full refund until 24 h before, then 50%
    booking = confirmed(driver, car_park, *future_window(days=3))
    stricter = {"booking_terms": {"free_cancellation_hours": 720, "late_cancellation_refund_percent": 0}}
    changed = api(operator).patch(f"/api/v1/carparks/{car_park.pk}", stricter, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["booking_terms"]["free_cancellation_hours"] == 720

    shown = api(driver).get(f"/api/v1/bookings/{booking.pk}").json()["cancellation_policy"]
    cancelled = api(driver).post(f"/api/v1/bookings/{booking.pk}/cancel").json()

    assert (shown["free_cancellation_hours"], shown["late_cancellation_refund_percent"]) == (24, 50)
    assert cancelled["refunded_minor"] == booking.amount_minor
    later = confirmed(driver, car_park, *future_window(days=4))
    assert api(driver).post(f"/api/v1/bookings/{later.pk}/cancel").json()["refunded_minor"] == 0


@pytest.mark.parametrize(
    "terms",
    [{"late_cancellation_refund_percent": 101}, {"free_cancellation_hours": -1}, {"entry_grace_minutes": "soon"}],
)
def test_bad_booking_terms_are_400_and_change_nothing(api, operator, terms):
    car_park = CarParkFactory(company=operator.company)
    response = api(operator).patch(f"/api/v1/carparks/{car_park.pk}", {"booking_terms": terms}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == f"booking_terms.{next(iter(terms))}"
    car_park.refresh_from_db()
    assert (car_park.free_cancellation_hours, car_park.late_cancellation_refund_percent) == (24, 50)


def test_extend_prices_the_whole_stay_minus_what_was_paid(api, driver, car_park):
    start, end = future_window(hours=2)
    booking = confirmed(driver, car_park, start, end)
    client = api(driver)
    response = client.post(
        f"/api/v1/bookings/{booking.pk}/extend", {"end": (end + timedelta(hours=1)).isoformat()}, format="json"
    )
    assert response.status_code == 200, response.content
    extension = response.json()["extensions"][0]
    assert extension["status"] == "held"
    assert extension["amount_minor"] == 250
    confirm = client.post(
        f"/api/v1/payments/offline/{extension['payment']['id']}/confirm",
        {"payment_method": "pm_card_visa"},
        format="json",
    )
    assert confirm.status_code == 200
    detail = client.get(f"/api/v1/bookings/{booking.pk}").json()
    assert detail["end"].startswith((end + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    assert detail["amount_minor"] == 750


def test_extend_of_a_held_booking_is_refused(api, driver, car_park):
    start, end = future_window()
    booking = hold(driver, car_park, start, end)
    response = api(driver).post(
        f"/api/v1/bookings/{booking.pk}/extend", {"end": (end + timedelta(hours=1)).isoformat()}, format="json"
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"end": "START"}, "end"),
        ({"start": "PAST"}, "start"),
        ({"end": "TOO_LONG"}, "end"),
        ({"start": "2030-01-01T10:00:00"}, "start"),
        ({"car_park": 999999}, "car_park"),
        ({"vehicle": 999999}, "vehicle"),
        ({"bay_type": "lorry"}, "bay_type"),
    ],
)
def test_bad_booking_input_is_400_and_holds_nothing(api, driver, car_park, change, field):
    start, end = future_window()
    body = {
        "car_park": car_park.pk,
        "vehicle": vehicle_of(driver).pk,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    replacements = {
        "START": start.isoformat(),
        "PAST": (start - timedelta(days=5)).isoformat(),
        "TOO_LONG": (start + timedelta(days=31)).isoformat(),
    }
    body.update(
        {key: replacements.get(value, value) if isinstance(value, str) else value for key, value in change.items()}
    )
    response = api(driver).post("/api/v1/bookings", body, format="json")
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]]
    assert not Booking.objects.exists()
    assert not CapacitySlot.objects.filter(reserved__gt=0).exists()


def test_another_drivers_vehicle_is_unknown(api, driver, other_driver, car_park):
    start, end = future_window()
    body = {
        "car_park": car_park.pk,
        "vehicle": vehicle_of(other_driver).pk,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    response = api(driver).post("/api/v1/bookings", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "vehicle"


def test_outside_opening_hours_and_inside_a_closure_are_400(api, driver, operator):
    from datetime import time

    day_only = CarParkFactory(hours=[(day, time(8), time(18), False) for day in range(7)])
    start, end = future_window(start_hour=17)
    response = post_booking(api(driver), driver, day_only, start, end)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "outside_opening_hours"

    car_park = CarParkFactory(company=operator.company)
    start, end = future_window()
    closure = {"starts_at": start.isoformat(), "ends_at": end.isoformat(), "reason": "Resurfacing"}
    assert api(operator).post(f"/api/v1/carparks/{car_park.pk}/closures", closure, format="json").status_code == 201
    response = post_booking(api(driver), driver, car_park, start, end)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "car_park_closed"
    assert not Booking.objects.exists()


def test_operators_and_anonymous_cannot_book(api, operator, car_park):
    start, end = future_window()
    body = {"car_park": car_park.pk, "vehicle": 1, "start": start.isoformat(), "end": end.isoformat()}
    assert api(operator).post("/api/v1/bookings", body, format="json").status_code == 403
    assert api(None).post("/api/v1/bookings", body, format="json").status_code == 401


def test_a_capacity_cut_below_what_is_sold_is_refused_with_the_bookings(api, operator, driver):
    car_park = CarParkFactory(company=operator.company, standard_bays=2, accessible_bays=0, ev_charging_bays=0)
    start, end = future_window()
    first = confirmed(driver, car_park, start, end)
    second = hold(driver, car_park, start, end)
    response = api(operator).patch(f"/api/v1/carparks/{car_park.pk}", {"total_capacity": 1}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "capacity_below_sold"
    assert {row["id"] for row in body["affected_bookings"]} == {first.pk, second.pk}
    car_park.refresh_from_db()
    assert car_park.standard_bays == 2


@pytest.mark.django_db(transaction=True)  # e-mails and refunds are queued on commit
def test_a_closure_over_bookings_lists_them_then_cancels_and_refunds_on_confirmation(api, operator, driver):
    car_park = CarParkFactory(company=operator.company)
    start, end = future_window(days=3)
    booking = confirmed(driver, car_park, start, end)
    closure = {"starts_at": start.isoformat(), "ends_at": end.isoformat(), "reason": "Flood"}
    url = f"/api/v1/carparks/{car_park.pk}/closures"
    refused = api(operator).post(url, closure, format="json")
    assert refused.status_code == 409
    assert [row["id"] for row in refused.json()["affected_bookings"]] == [booking.pk]
    assert Booking.objects.get().status == BookingStatus.CONFIRMED

    mail.outbox.clear()
    done = api(operator).post(url, {**closure, "cancel_affected_bookings": True}, format="json")
    assert done.status_code == 201
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED
    assert booking.cancellation_reason == "car_park_closed"
    assert Refund.objects.get().amount_minor == booking.amount_minor
    assert {m.subject for m in mail.outbox} >= {f"Your booking at {car_park.name} is cancelled"}
    assert CapacitySlot.objects.filter(car_park=car_park, capacity=0).exists()
    assert not CapacitySlot.objects.filter(car_park=car_park, reserved__gt=0).exists()


def test_a_repeated_key_replays_the_first_answer(api, driver, car_park):
    start, end = future_window()
    client = api(driver)
    first = post_booking(client, driver, car_park, start, end, key="replay-1")
    again = post_booking(client, driver, car_park, start, end, key="replay-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Booking.objects.count() == 1


def test_the_same_key_with_a_different_body_is_422(api, driver, car_park):
    start, end = future_window()
    client = api(driver)
    assert post_booking(client, driver, car_park, start, end, key="k").status_code == 201
    response = post_booking(client, driver, car_park, start, end + timedelta(hours=1), key="k")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Booking.objects.count() == 1


def test_a_key_still_in_flight_gets_409_with_retry_after(api, driver, car_park, settings):
    from bookings.models import IdempotencyRecord

    settings.IDEMPOTENCY_WAIT_SECONDS = 0.2
    start, end = future_window()
    client = api(driver)
    response = post_booking(client, driver, car_park, start, end, key="busy")
    record = IdempotencyRecord.objects.get(key="busy")
    IdempotencyRecord.objects.filter(pk=record.pk).update(is_complete=False)
    again = post_booking(client, driver, car_park, start, end, key="busy")
    assert response.status_code == 201
    assert again.status_code == 409
    assert again["Retry-After"] == "1"
    assert again.json()["code"] == "idempotency_key_in_use"


def test_a_failed_request_with_a_key_is_replayed_too(api, driver, car_park):
    start, end = future_window()
    client = api(driver)
    first = post_booking(client, driver, car_park, end, start, key="bad-1")
    again = post_booking(client, driver, car_park, end, start, key="bad-1")
    assert first.status_code == again.status_code == 400
    assert first.json()["errors"] == again.json()["errors"]


AFTERNOONS = [{"weekday": day, "opens": "13:00", "closes": "20:00"} for day in range(7)]


def test_currency_cannot_change_under_live_bookings(api, operator, driver):
    car_park = CarParkFactory(company=operator.company)
    booking = confirmed(driver, car_park, *future_window())

    response = api(operator).patch(f"/api/v1/carparks/{car_park.pk}", {"currency": "EUR"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "change_affects_bookings"
    assert [row["id"] for row in response.json()["affected_bookings"]] == [booking.pk]
    car_park.refresh_from_db()
    assert car_park.currency == "GBP"


def test_currency_changes_once_no_booking_is_live(api, operator, driver):
    car_park = CarParkFactory(company=operator.company)
    booking = confirmed(driver, car_park, *future_window())
    services.booking_cancel(booking_id=booking.pk)

    response = api(operator).patch(f"/api/v1/carparks/{car_park.pk}", {"currency": "EUR"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["currency"] == "EUR"


def test_opening_hours_cannot_shut_out_a_live_booking(api, operator, driver):
    car_park = CarParkFactory(company=operator.company)  # open 24/7
    morning = confirmed(driver, car_park, *future_window(start_hour=9))
    confirmed(driver, car_park, *future_window(start_hour=14))

    response = api(operator).patch(f"/api/v1/carparks/{car_park.pk}", {"opening_hours": AFTERNOONS}, format="json")

    assert response.status_code == 409
    assert [row["id"] for row in response.json()["affected_bookings"]] == [morning.pk]
    assert car_park.opening_periods.count() == 7
    assert car_park.opening_periods.filter(opens=time(0)).count() == 7


def test_opening_hours_that_keep_every_live_booking_are_accepted(api, operator, driver):
    car_park = CarParkFactory(company=operator.company)
    confirmed(driver, car_park, *future_window(start_hour=14))

    response = api(operator).patch(f"/api/v1/carparks/{car_park.pk}", {"opening_hours": AFTERNOONS}, format="json")

    assert response.status_code == 200, response.content


def test_a_time_zone_move_that_shifts_hours_over_a_live_booking_is_refused(api, operator, driver):
    car_park = CarParkFactory(company=operator.company, hours=[(day, time(8), time(18), False) for day in range(7)])
    booking = confirmed(
        driver, car_park, *future_window(start_hour=8)
    )  # 08:00-10:00 UTC: open in London, 17:00 in Tokyo

    response = api(operator).patch(f"/api/v1/carparks/{car_park.pk}", {"timezone": "Asia/Tokyo"}, format="json")

    assert response.status_code == 409
    assert [row["id"] for row in response.json()["affected_bookings"]] == [booking.pk]
    car_park.refresh_from_db()
    assert car_park.timezone == "Europe/London"
