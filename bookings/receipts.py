"""Receipts and gate QR codes for bookings.

``receipt_for(booking)`` builds one frozen ``Receipt`` (lines, totals, tax, payments, refunds, net
paid); the HTML page and the PDF both render that object, so they can never disagree. Money is
``Money`` (``Decimal``) throughout and times are local to the car park.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from html import escape
from zoneinfo import ZoneInfo

import qrcode
from django.db.models import Prefetch, QuerySet
from django.template.loader import render_to_string
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from backend.api.errors import Conflict
from backend.carparks.models import BayType
from backend.core.money import Money
from bookings.models import (
    Booking,
    BookingStatus,
    Payment,
    PaymentKind,
    PaymentStatus,
    Refund,
    RefundStatus,
)

QR_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN)


class NotPaid(Conflict):
    code = "not_paid"


class NoCode(Conflict):
    code = "no_code"


# --- the receipt ------------------------------------------------------------------------------


def format_local(moment: datetime) -> str:
    """``Tue 3 Mar 2026, 10:00 GMT``: a local time with its zone abbreviation (locale-independent)."""
    return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M} {moment.tzname()}"


def format_period(start: datetime | None, end: datetime | None) -> str:
    """``Tue 3 Mar 2026, 10:00-12:00 GMT`` (with an en dash) within one day, else both ends in full."""
    if start is None or end is None:
        return ""
    if start.date() == end.date() and start.tzname() == end.tzname():
        return f"{start:%a} {start.day} {start:%b %Y, %H:%M}\u2013{end:%H:%M} {end.tzname()}"
    return f"{format_local(start)} \u2013 {format_local(end)}"


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    kind: str
    description: str
    amount: Money
    starts_at: datetime | None  # local
    ends_at: datetime | None

    @property
    def period(self) -> str:
        return format_period(self.starts_at, self.ends_at)


@dataclass(frozen=True, slots=True)
class ReceiptPayment:
    kind: str
    kind_label: str
    amount: Money
    tax_included: Money
    paid_at: datetime  # local

    @property
    def paid_on(self) -> str:
        return format_local(self.paid_at)


@dataclass(frozen=True, slots=True)
class ReceiptRefund:
    amount: Money
    status: str
    status_label: str
    reason: str
    dated_at: datetime  # local: when it succeeded, else when it was requested

    @property
    def dated_on(self) -> str:
        return format_local(self.dated_at)


@dataclass(frozen=True, slots=True)
class Receipt:
    number: str
    issuer: str
    issued_at: datetime  # local: the first payment, or the confirmation of a free booking
    booking_id: int
    booking_status: str
    car_park_name: str
    car_park_address: str
    time_zone: str
    start: datetime  # local
    end: datetime
    plate: str
    bay_type: str
    currency: str
    lines: tuple[ReceiptLine, ...]
    total: Money  # the sum of the lines: the price of the stay, tax included
    payments: tuple[ReceiptPayment, ...]
    paid: Money
    tax_rate: Decimal
    tax_included: Money  # inside what was paid
    refunds: tuple[ReceiptRefund, ...]
    refunded: Money  # pending and succeeded refunds
    net_paid: Money

    @property
    def tax_percent(self) -> str:
        return f"{(self.tax_rate * 100).normalize():f}%"

    @property
    def issued_on(self) -> str:
        return format_local(self.issued_at)

    @property
    def start_local(self) -> str:
        return format_local(self.start)

    @property
    def end_local(self) -> str:
        return format_local(self.end)

    @property
    def pdf_filename(self) -> str:
        return f"receipt-{self.number}.pdf"


def receipt_bookings() -> QuerySet[Booking]:
    """Bookings with everything a receipt reads, in three queries whatever their payments."""
    return Booking.objects.select_related("car_park__company").prefetch_related(
        Prefetch(
            "payments",
            queryset=Payment.objects.prefetch_related(
                Prefetch("refunds", queryset=Refund.objects.order_by("created_at", "pk"))
            ),
        )
    )


def _aware(value: object, zone: ZoneInfo) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(zone) if isinstance(value, str) and value else None


def _lines(booking: Booking, zone: ZoneInfo) -> tuple[ReceiptLine, ...]:
    """The priced lines of the stay; the ``tax_included`` line is shown in the totals instead."""
    lines = []
    for line in booking.price_lines:
        if line["kind"] == "tax_included":
            continue
        description = "Extension" if line["kind"] == "extension" else str(line["description"])
        lines.append(
            ReceiptLine(
                kind=str(line["kind"]),
                description=description,
                amount=Money.from_minor(int(line["amount_minor"]), booking.currency),
                starts_at=_aware(line.get("starts_at"), zone),
                ends_at=_aware(line.get("ends_at"), zone),
            )
        )
    return tuple(lines)


def _total(amounts: Iterable[Money], currency: str) -> Money:
    return sum(amounts, Money.zero(currency))


def receipt_for(booking: Booking) -> Receipt:
    """The receipt of a booking (load it through ``receipt_bookings()`` to save queries).

    Raises ``NotPaid`` (409) unless some payment succeeded or the booking was confirmed free.
    """
    payments = sorted(
        (payment for payment in booking.payments.all() if payment.status == PaymentStatus.SUCCEEDED),
        key=lambda payment: (payment.succeeded_at or payment.created_at, payment.created_at),
    )
    is_free_and_confirmed = booking.amount_minor == 0 and booking.confirmed_at is not None
    if not payments and not is_free_and_confirmed:
        raise NotPaid("This booking has not been paid, so it has no receipt yet.")

    car_park = booking.car_park
    zone = car_park.zone
    currency = booking.currency
    rate = Decimal(booking.tax_rate)
    receipt_payments = []
    receipt_refunds = []
    for payment in payments:
        amount = Money.from_minor(payment.amount_minor, currency)
        tax = amount.tax_included(rate)
        paid_at = payment.succeeded_at or payment.created_at
        receipt_payments.append(
            ReceiptPayment(payment.kind, PaymentKind(payment.kind).label, amount, tax, paid_at.astimezone(zone))
        )
        for refund in payment.refunds.all():
            dated = refund.succeeded_at or refund.created_at
            receipt_refunds.append(
                ReceiptRefund(
                    amount=Money.from_minor(refund.amount_minor, currency),
                    status=refund.status,
                    status_label=RefundStatus(refund.status).label,
                    reason=refund.reason,
                    dated_at=dated.astimezone(zone),
                )
            )
    receipt_refunds.sort(key=lambda refund: refund.dated_at)
    lines = _lines(booking, zone)
    paid = _total((payment.amount for payment in receipt_payments), currency)
    refunded = _total((refund.amount for refund in receipt_refunds if refund.status != RefundStatus.FAILED), currency)
    issued_at = receipt_payments[0].paid_at if receipt_payments else (booking.confirmed_at or booking.created_at)
    return Receipt(
        number=f"R-{car_park.pk}-{booking.pk}",
        issuer=car_park.company.name,
        issued_at=issued_at.astimezone(zone),
        booking_id=booking.pk,
        booking_status=BookingStatus(booking.status).label,
        car_park_name=car_park.name,
        car_park_address=car_park.address,
        time_zone=car_park.timezone,
        start=booking.start.astimezone(zone),
        end=booking.end.astimezone(zone),
        plate=booking.plate,
        bay_type=BayType(booking.bay_type).label,
        currency=currency,
        lines=lines,
        total=_total((line.amount for line in lines), currency),
        payments=tuple(receipt_payments),
        paid=paid,
        tax_rate=rate,
        tax_included=_total((payment.tax_included for payment in receipt_payments), currency),
        refunds=tuple(receipt_refunds),
        refunded=refunded,
        net_paid=paid - refunded,
    )


# --- renderings -------------------------------------------------------------------------------


def receipt_html(receipt: Receipt) -> str:
    """A self-contained printable page (inline CSS, no external assets)."""
    return render_to_string("bookings/receipt.html", {"receipt": receipt})


def _table(rows: Sequence[Sequence[object]], widths: list[float], *, header: bool = True) -> Table:
    table = Table(rows, colWidths=widths, hAlign="LEFT")
    style = [
        ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("ALIGN", (-1, 0), (-1, -1), "RIGHT"),
        ("LINEBELOW", (0, -1), (-1, -1), 0.25, colors.grey),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
    ]
    if header:
        style += [("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"), ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black)]
    table.setStyle(TableStyle(style))
    return table


def receipt_pdf(receipt: Receipt) -> bytes:
    """The same receipt as a one-page A4 PDF.

    Deterministic (``invariant``) and uncompressed: the same receipt gives the same bytes, and its
    text can be searched in them. The standard fonts cover Latin-1 (plus the euro sign) only.
    """
    styles = getSampleStyleSheet()
    body = styles["BodyText"]
    small = ParagraphStyle("small", parent=body, fontSize=8, textColor=colors.grey)

    def text(value: object, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(str(value)), style)

    width = A4[0] - 40 * mm
    story: list[Flowable] = [
        Paragraph(f"Receipt {escape(receipt.number)}", styles["Title"]),
        text(f"Issued by {receipt.issuer} on {receipt.issued_on}"),
        Spacer(1, 4 * mm),
        _table(
            [
                ["Car park", text(f"{receipt.car_park_name}, {receipt.car_park_address}")],
                ["Booking", f"#{receipt.booking_id} ({receipt.booking_status})"],
                ["Vehicle", receipt.plate],
                ["Bay type", receipt.bay_type],
                ["From", receipt.start_local],
                ["Until", receipt.end_local],
                ["Time zone", receipt.time_zone],
            ],
            [35 * mm, width - 35 * mm],
            header=False,
        ),
        Spacer(1, 5 * mm),
        Paragraph("Charges", styles["Heading3"]),
        _table(
            [
                ["Item", "Period", "Amount"],
                *([text(line.description), text(line.period, small), str(line.amount)] for line in receipt.lines),
                ["Total", "", str(receipt.total)],
            ],
            [60 * mm, width - 95 * mm, 35 * mm],
        ),
    ]
    if receipt.payments:
        story += [
            Spacer(1, 5 * mm),
            Paragraph("Payments", styles["Heading3"]),
            _table(
                [
                    ["Date", "Payment", f"Tax included ({receipt.tax_percent})", "Amount"],
                    *(
                        [payment.paid_on, payment.kind_label, str(payment.tax_included), str(payment.amount)]
                        for payment in receipt.payments
                    ),
                    ["", "Paid", str(receipt.tax_included), str(receipt.paid)],
                ],
                [55 * mm, width - 140 * mm, 50 * mm, 35 * mm],
            ),
        ]
    if receipt.refunds:
        story += [
            Spacer(1, 5 * mm),
            Paragraph("Refunds", styles["Heading3"]),
            _table(
                [
                    ["Date", "Status", "Amount"],
                    *([refund.dated_on, refund.status_label, str(refund.amount)] for refund in receipt.refunds),
                    ["", "Refunded", str(receipt.refunded)],
                ],
                [55 * mm, width - 90 * mm, 35 * mm],
            ),
        ]
    story += [
        Spacer(1, 5 * mm),
        _table(
            [
                ["Net paid", str(receipt.net_paid)],
                [f"Tax rate {receipt.tax_percent}, included in prices", str(receipt.tax_included)],
            ],
            [width - 35 * mm, 35 * mm],
            header=False,
        ),
    ]
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title=f"Receipt {receipt.number}",
        author=receipt.issuer,
        invariant=1,
        pageCompression=0,
    )
    document.build(story)
    return buffer.getvalue()


# --- gate QR code -----------------------------------------------------------------------------


def qr_png(booking: Booking) -> bytes:
    """A PNG QR code of the booking's gate code; raises ``NoCode`` (409) unless it may enter now or later."""
    if booking.status not in QR_STATUSES or not booking.code:
        raise NoCode("Only a confirmed booking has a code to show at the gate.")
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=4)
    code.add_data(booking.code)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer)
    return buffer.getvalue()
