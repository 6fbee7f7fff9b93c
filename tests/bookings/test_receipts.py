"""Receipts (HTML, PDF) and the gate QR code: content, money and tax, who may see them, refusals."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
import qrcode
from drf_spectacular.generators import SchemaGenerator
from PIL import Image

from backend.core.money import Money
from bookings import services
from bookings.models import Booking, BookingStatus, PaymentStatus
from bookings.receipts import qr_png, receipt_bookings, receipt_for
from pricing.models import RateCard
from tests.bookings.helpers import confirmed, future_window, hold
from tests.factories import CarParkFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def receipt_url(booking: Booking, suffix: str = "receipt") -> str:
    return f"/api/v1/bookings/{booking.pk}/{suffix}"


def paid_booking(driver, car_park, hours: float = 2) -> Booking:
    start, end = future_window(hours=hours)
    return confirmed(driver, car_park, start, end)


def extend_and_pay(booking: Booking, hours: float = 1) -> None:
    extension = services.booking_extend(booking_id=booking.pk, new_end=booking.end + timedelta(hours=hours))
    services.payment_succeeded(payment=extension.payments.get())


def gbp(minor: int) -> Money:
    return Money.from_minor(minor, "GBP")


def assert_problem(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == code


# --- the receipt data ------------------------------------------------------------------------


def test_receipt_of_a_paid_booking_adds_up(driver, car_park):
    booking = paid_booking(driver, car_park)  # default card: 2.50/h incl. 20% tax
    receipt = receipt_for(receipt_bookings().get(pk=booking.pk))
    assert receipt.number == f"R-{car_park.pk}-{booking.pk}"
    assert receipt.issuer == "Acme Parking"
    assert receipt.plate == booking.plate
    assert receipt.bay_type == "Standard"
    assert receipt.time_zone == "Europe/London"
    assert receipt.start == booking.start
    assert receipt.start.tzinfo is not None
    assert str(receipt.start.tzinfo) == "Europe/London"
    assert [(line.kind, line.amount) for line in receipt.lines] == [("parking", gbp(500))]
    assert receipt.total == receipt.paid == receipt.net_paid == gbp(500)
    assert [(p.kind_label, p.amount, p.tax_included) for p in receipt.payments] == [("Booking", gbp(500), gbp(83))]
    assert receipt.tax_rate == Decimal("0.2")
    assert receipt.tax_percent == "20%"
    assert receipt.tax_included == gbp(83)
    assert receipt.refunds == ()
    assert receipt.refunded == gbp(0)


def test_an_extension_adds_a_line_a_payment_and_its_tax(driver, car_park):
    booking = paid_booking(driver, car_park)
    extend_and_pay(booking, hours=1)
    receipt = receipt_for(receipt_bookings().get(pk=booking.pk))
    assert [(line.kind, line.amount) for line in receipt.lines] == [("parking", gbp(500)), ("extension", gbp(250))]
    assert receipt.total == receipt.paid == gbp(750)
    # 2.50 - 2.50 / 1.2 = 2.50 - 2.08 (2.0833 half up) = 0.42
    assert [(p.kind, p.tax_included) for p in receipt.payments] == [("booking", gbp(83)), ("extension", gbp(42))]
    assert receipt.tax_included == gbp(125)
    assert receipt.end == booking.end + timedelta(hours=1)
    booking.refresh_from_db()
    assert booking.tax_minor == 125  # the booking's tax follows its amount


def test_tax_included_rounds_half_up_to_minor_units():
    # 15.03 x 0.2 / 1.2 = 2.505 exactly: half up gives 2.51 (half even would give 2.50)
    assert Money(Decimal("15.03"), "GBP").tax_included(Decimal("0.2")) == Money(Decimal("2.51"), "GBP")
    assert Money(Decimal("250"), "JPY").tax_included(Decimal("0.1")) == Money(Decimal("23"), "JPY")
    assert Money(Decimal("5.00"), "GBP").tax_included(Decimal("0")) == Money(Decimal("0.00"), "GBP")


def test_the_receipt_shows_the_tax_the_quote_said(driver, company):
    car_park = CarParkFactory(company=company)
    # 15.03 for the stay: the quote's tax is 2.51, and so is the receipt's.
    RateCard.objects.create(car_park=car_park, hourly_rate=Decimal("15.03"), tax_rate=Decimal("0.2"))
    booking = paid_booking(driver, car_park, hours=1)
    assert (booking.amount_minor, booking.tax_minor) == (1503, 251)
    receipt = receipt_for(receipt_bookings().get(pk=booking.pk))
    assert receipt.tax_included == gbp(251)


def test_a_free_confirmed_booking_has_a_receipt_of_zero(api, driver, company):
    car_park = CarParkFactory(company=company)
    RateCard.objects.create(car_park=car_park, hourly_rate=0, minimum_charge=0, tax_rate=Decimal("0.2"))
    booking = hold(driver, car_park, *future_window())
    assert booking.status == BookingStatus.CONFIRMED
    assert not booking.payments.exists()
    response = api(driver).get(receipt_url(booking))
    assert response.status_code == 200, response.content
    receipt = receipt_for(receipt_bookings().get(pk=booking.pk))
    assert receipt.payments == ()
    assert receipt.net_paid == Money.zero("GBP")
    assert "0.00 GBP" in response.content.decode()


# --- HTML -----------------------------------------------------------------------------------


def test_driver_reads_the_html_receipt(api, driver, car_park):
    booking = paid_booking(driver, car_park)
    response = api(driver).get(receipt_url(booking))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Cache-Control"] == "private, no-store"
    html = response.content.decode()
    assert html.startswith("<!DOCTYPE html>")
    assert f"Receipt R-{car_park.pk}-{booking.pk}" in html
    assert "Acme Parking" in html
    assert car_park.name in html
    assert car_park.address in html
    assert booking.plate in html
    assert "Europe/London" in html
    assert "5.00 GBP" in html
    assert "0.83 GBP" in html
    assert "Tax rate 20%" in html
    assert "Refunds" not in html
    assert "<link" not in html
    assert "<script" not in html
    assert booking.code not in html  # the gate code is a credential; receipts get forwarded


def test_receipt_of_a_cancelled_booking_lists_the_refund_and_net_paid(api, driver, car_park):
    booking = paid_booking(driver, car_park)
    services.booking_cancel(booking_id=booking.pk)  # 2 days ahead: refunded in full
    receipt = receipt_for(receipt_bookings().get(pk=booking.pk))
    assert [(refund.amount, refund.status) for refund in receipt.refunds] == [(Money.from_minor(500, "GBP"), "pending")]
    assert receipt.paid == Money.from_minor(500, "GBP")
    assert receipt.net_paid == Money.from_minor(0, "GBP")
    html = api(driver).get(receipt_url(booking)).content.decode()
    assert "Cancelled" in html
    assert '<tr class="refund">' in html
    assert "Refunded" in html
    assert "0.00 GBP" in html


def test_local_times_and_zero_decimal_currencies(api, driver, company):
    car_park = CarParkFactory(company=company, timezone="Asia/Tokyo", currency="JPY")
    RateCard.objects.create(car_park=car_park, hourly_rate=300, minimum_charge=0, tax_rate=Decimal("0.1"))
    start, end = future_window(hours=2, start_hour=10)  # 10:00 UTC is 19:00 in Tokyo
    booking = confirmed(driver, car_park, start, end)
    html = api(driver).get(receipt_url(booking)).content.decode()
    local = start.astimezone(car_park.zone)
    assert f"{local:%a} {local.day} {local:%b %Y}, 19:00 JST" in html
    assert "21:00 JST" in html
    assert "Asia/Tokyo" in html
    assert "600 JPY" in html
    assert "55 JPY" in html  # 600 - 600 / 1.1 = 600 - 545 (545.45 half up)
    assert "Tax rate 10%" in html
    assert "600.00" not in html


def test_html_escapes_what_operators_type(api, driver, company):
    car_park = CarParkFactory(company=company, name="Park & Ride <b>North</b>")
    booking = paid_booking(driver, car_park)
    html = api(driver).get(receipt_url(booking)).content.decode()
    assert "Park &amp; Ride &lt;b&gt;North&lt;/b&gt;" in html
    assert "<b>North" not in html
    pdf = api(driver).get(receipt_url(booking, "receipt.pdf"))
    assert pdf.status_code == 200
    assert b"(Park & Ride <) Tj (b) Tj (>) Tj (North)" in pdf.content  # shown as typed, not as markup


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_receipt_has_the_same_content(api, driver, car_park):
    booking = paid_booking(driver, car_park)
    extend_and_pay(booking, hours=1)
    response = api(driver).get(receipt_url(booking, "receipt.pdf"))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="receipt-R-{car_park.pk}-{booking.pk}.pdf"'
    assert response["Cache-Control"] == "private, no-store"
    pdf = response.content
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    for text in (
        f"Receipt R-{car_park.pk}-{booking.pk}",
        booking.plate,
        car_park.name,
        "Acme Parking",
        "Europe/London",
        "5.00 GBP",
        "2.50 GBP",
        "7.50 GBP",
        "1.25 GBP",
        "Tax rate 20%",
        "Extension",
    ):
        assert text.encode() in pdf, text


def test_pdf_is_the_same_bytes_every_time(api, driver, car_park):
    booking = paid_booking(driver, car_park)
    client = api(driver)
    assert (
        client.get(receipt_url(booking, "receipt.pdf")).content
        == client.get(receipt_url(booking, "receipt.pdf")).content
    )


def test_pdf_of_a_cancelled_booking_shows_the_refund(api, driver, car_park):
    booking = paid_booking(driver, car_park)
    services.booking_cancel(booking_id=booking.pk)
    pdf = api(driver).get(receipt_url(booking, "receipt.pdf")).content
    assert b"Refunds" in pdf
    assert b"Pending" in pdf
    assert b"0.00 GBP" in pdf


# --- who may see it, and refusals -------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["receipt", "receipt.pdf", "qr.png"])
def test_only_the_driver_and_the_company_staff_see_it(
    api, driver, other_driver, operator, other_operator, car_park, suffix
):
    booking = paid_booking(driver, car_park)
    url = receipt_url(booking, suffix)
    assert api(driver).get(url).status_code == 200
    assert api(operator).get(url).status_code == 200
    assert_problem(api(other_driver).get(url), 404, "not_found")
    assert_problem(api(other_operator).get(url), 404, "not_found")
    assert_problem(api(None).get(url), 401, "not_authenticated")


@pytest.mark.parametrize("suffix", ["receipt", "receipt.pdf"])
def test_an_unpaid_hold_has_no_receipt(api, driver, car_park, suffix):
    booking = hold(driver, car_park, *future_window())
    response = api(driver).get(receipt_url(booking, suffix), HTTP_ACCEPT="text/html,application/pdf")
    assert_problem(response, 409, "not_paid")
    assert booking.payments.get().status == PaymentStatus.PENDING


def test_an_expired_hold_has_no_receipt(api, driver, car_park):
    booking = hold(driver, car_park, *future_window())
    services.booking_expire(booking_id=booking.pk, now=booking.hold_expires_at + timedelta(seconds=1))
    booking.refresh_from_db()
    assert booking.status == BookingStatus.EXPIRED
    assert_problem(api(driver).get(receipt_url(booking)), 409, "not_paid")


def test_unknown_booking_is_a_404_problem(api, driver):
    assert_problem(api(driver).get("/api/v1/bookings/999999/receipt.pdf"), 404, "not_found")


# --- QR code --------------------------------------------------------------------------------


def test_confirmed_booking_gets_a_png_qr_code(api, driver, car_park):
    booking = paid_booking(driver, car_park)
    response = api(driver).get(receipt_url(booking, "qr.png"))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, no-store"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    # 8 characters fit version 1 (21 modules) at level M; 4 modules of border each side, 10 px each
    assert image.size == ((21 + 2 * 4) * 10, (21 + 2 * 4) * 10)


def test_qr_code_encodes_the_booking_code_and_nothing_else(driver, car_park, monkeypatch):
    encoded: list[object] = []
    original = qrcode.QRCode.add_data

    def spy(self: qrcode.QRCode, data: object, *args: object) -> None:
        encoded.append(data)
        original(self, data, *args)

    monkeypatch.setattr(qrcode.QRCode, "add_data", spy)
    booking = paid_booking(driver, car_park)
    qr_png(booking)
    assert encoded == [booking.code]


def test_no_qr_code_before_payment_or_after_cancellation(api, driver, car_park):
    held = hold(driver, car_park, *future_window(days=2))
    assert_problem(api(driver).get(receipt_url(held, "qr.png")), 409, "no_code")
    cancelled = paid_booking(driver, car_park)
    services.booking_cancel(booking_id=cancelled.pk)
    assert_problem(api(driver).get(receipt_url(cancelled, "qr.png")), 409, "no_code")


# --- OpenAPI ----------------------------------------------------------------------------------


def test_schema_documents_the_media_types_and_conflicts():
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path, media_type in (
        ("/api/v1/bookings/{id}/receipt", "text/html"),
        ("/api/v1/bookings/{id}/receipt.pdf", "application/pdf"),
        ("/api/v1/bookings/{id}/qr.png", "image/png"),
    ):
        responses = paths[path]["get"]["responses"]
        assert list(responses["200"]["content"]) == [media_type]
        assert list(responses["409"]["content"]) == [PROBLEM]
        assert {"401", "404"} <= set(responses)
