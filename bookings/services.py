"""Every write of the bookings app: one function per use case, each in a transaction that
re-checks state under a row lock. Provider calls (Stripe) happen outside transactions; tasks and
e-mails are queued on commit."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum

from backend.accounts.models import User, Vehicle
from backend.api.errors import InvalidInput
from backend.carparks import services as inventory
from backend.carparks.hours import is_open_throughout
from backend.carparks.models import BayType, CarPark, Closure
from backend.carparks.selectors import closures_overlapping, is_open_for_window, periods_of
from backend.core import clock
from backend.core.clock import iso_utc
from backend.core.money import Money
from bookings import ledger
from bookings.exceptions import (
    CapacityBelowSold,
    ChangeAffectsBookings,
    ClosureAffectsBookings,
    InvalidTransition,
    PaymentUnavailable,
    UnpaidHoldLimit,
    WindowFullError,
)
from bookings.models import (
    LIVE_STATUSES,
    Booking,
    BookingExtension,
    BookingStatus,
    ExtensionStatus,
    Payment,
    PaymentKind,
    PaymentStatus,
    Refund,
    RefundStatus,
    SavedCard,
)
from bookings.payments.gateway import get_provider
from bookings.payments.providers import PaymentProviderError
from pricing.quotes import CancellationPolicy, Quote
from pricing.selectors import quote_for_window

logger = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at a barrier
CODE_LENGTH = 8
CLOCK_SKEW = timedelta(minutes=1)


# --- validation -----------------------------------------------------------------------------


def validate_window(
    car_park: CarPark, start: datetime, end: datetime, *, now: datetime, end_field: str = "end"
) -> None:
    """Refuse a stay the car park cannot take: order, past, length, opening hours, closures."""
    if end <= start:
        raise InvalidInput(end_field, "The end must be after the start.", code="end_before_start")
    if start < now - CLOCK_SKEW:
        raise InvalidInput("start", "The start is in the past.", code="start_in_past")
    if end - start > timedelta(days=settings.BOOKING_MAX_STAY_DAYS):
        raise InvalidInput(
            end_field, f"A stay lasts at most {settings.BOOKING_MAX_STAY_DAYS} days.", code="stay_too_long"
        )
    if start > now + timedelta(days=settings.BOOKING_MAX_ADVANCE_DAYS):
        raise InvalidInput(
            "start", f"Book at most {settings.BOOKING_MAX_ADVANCE_DAYS} days ahead.", code="start_too_far_ahead"
        )
    if not is_open_for_window(car_park, start, end):
        raise InvalidInput(None, "The car park is not open for the whole stay.", code="outside_opening_hours")
    closures = closures_overlapping(car_park, start, end)
    if closures:
        raise InvalidInput(None, f"The car park is closed then: {closures[0].reason}.", code="car_park_closed")


def price_lines_of(quote: Quote) -> list[dict[str, Any]]:
    return [
        {**line.as_dict(), "starts_at": iso_utc(line.starts_at), "ends_at": iso_utc(line.ends_at)}
        for line in quote.lines
    ]


def _bay_type_checked(car_park: CarPark, bay_type: str) -> str:
    if bay_type not in BayType.values:
        raise InvalidInput("bay_type", f"Unknown bay type {bay_type!r}.", code="invalid_choice")
    if car_park.bays_of(bay_type) == 0:
        raise InvalidInput("bay_type", f"This car park has no {bay_type} bays.", code="no_such_bays")
    return bay_type


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


# --- holds ------------------------------------------------------------------------------------


def booking_hold(
    *,
    driver: User,
    car_park_id: int,
    vehicle_id: int,
    start: datetime,
    end: datetime,
    bay_type: str = BayType.STANDARD,
    now: datetime | None = None,
) -> Booking:
    """Hold a bay for ``[start, end)`` at the price quoted now, and open a payment for it.

    Raises ``InvalidInput`` (400) for an unknown car park or vehicle or an impossible window,
    ``UnpaidHoldLimit`` (409) when the driver already has the maximum of unpaid holds,
    ``WindowFullError`` (409) when some slot of the window is sold out, and
    ``PaymentUnavailable`` (503, the hold released) when the provider cannot be reached.
    The booking comes back with its payments and extensions loaded (no need to read it again).
    """
    now = now or clock.now()
    car_park = CarPark.objects.live().filter(pk=car_park_id).first()
    if car_park is None:
        raise InvalidInput("car_park", "No such car park.", code="does_not_exist")
    _bay_type_checked(car_park, bay_type)
    validate_window(car_park, start, end, now=now)

    try:
        booking, payment = _hold_in_transaction(driver, car_park, vehicle_id, start, end, bay_type, now)
    except WindowFullError:
        # Overdue holds are swept lazily, where they stand in the way (their own transactions,
        # so freed bays stay freed), then the hold is tried once more.
        if not holds_expire(now=now, car_park_id=car_park.pk):
            raise
        booking, payment = _hold_in_transaction(driver, car_park, vehicle_id, start, end, bay_type, now)
    if payment is not None:
        try:
            payment_open(payment=payment)
        except PaymentProviderError as exc:
            booking_expire(booking_id=booking.pk, now=now, force=True)
            payment_abandon_unopened(payment=payment)
            raise PaymentUnavailable(
                "The payment provider cannot take this payment now; nothing was held.", headers={"Retry-After": "30"}
            ) from exc
    return with_related_known(booking, payments=[payment] if payment else [], extensions=[])


def _lock_driver_and_get_vehicle(driver: User, vehicle_id: int) -> Vehicle:
    """The driver's vehicle, with the driver's row locked in the same query: one driver's holds
    queue here, so the unpaid-hold limit holds under concurrency."""
    vehicle = (
        Vehicle.objects.filter(pk=vehicle_id, owner=driver)
        .select_related("owner")
        .select_for_update(of=("owner",))
        .only("plate", "owner__id")
        .first()
    )
    if vehicle is None:
        raise InvalidInput("vehicle", "No such vehicle among yours.", code="does_not_exist")
    return vehicle


def _hold_in_transaction(
    driver: User, car_park: CarPark, vehicle_id: int, start: datetime, end: datetime, bay_type: str, now: datetime
) -> tuple[Booking, Payment | None]:
    with transaction.atomic():
        vehicle = _lock_driver_and_get_vehicle(driver, vehicle_id)
        unpaid = Booking.objects.filter(driver=driver, status=BookingStatus.HELD, hold_expires_at__gt=now).count()
        if unpaid >= settings.BOOKING_MAX_UNPAID_HOLDS:
            raise UnpaidHoldLimit(
                f"You already have {unpaid} unpaid holds; pay or cancel one first.",
                extra={"limit": settings.BOOKING_MAX_UNPAID_HOLDS},
            )
        quote = quote_for_window(car_park, start, end)
        ledger_start, ledger_end = ledger.ledger_range(start, end)
        booking = Booking.objects.create(
            driver=driver,
            car_park=car_park,
            vehicle=vehicle,
            plate=vehicle.plate,
            bay_type=bay_type,
            start=start,
            end=end,
            ledger_start=ledger_start,
            ledger_end=ledger_end,
            status=BookingStatus.HELD,
            amount_minor=quote.amount_minor,
            currency=quote.currency,
            tax_minor=quote.tax.to_minor(),
            tax_rate=quote.tax_rate,
            price_lines=price_lines_of(quote),
            hold_expires_at=now + timedelta(minutes=settings.BOOKING_HOLD_MINUTES),
            free_cancellation_hours=quote.cancellation_policy.free_until_hours_before_start,
            late_cancellation_refund_percent=quote.cancellation_policy.late_refund_percent,
        )
        try:
            ledger.reserve(car_park, bay_type, ledger_start, ledger_end)
        except ledger.WindowFull:
            raise WindowFullError("No bay is free for the whole of this window.") from None
        payment = None
        if booking.amount_minor > 0:
            payment = payment_create(booking=booking, kind=PaymentKind.BOOKING, amount_minor=booking.amount_minor)
        else:
            _confirm(booking, now=now)
    return booking, payment


def with_related_known(booking: Booking, *, payments: list[Payment], extensions: list[BookingExtension]) -> Booking:
    """Fill Django's prefetch cache of ``booking`` with related rows this transaction just wrote, so
    showing it reads nothing back (as if ``prefetch_related("payments", "extensions")`` had run)."""
    cache: dict[str, Any] = booking.__dict__.setdefault("_prefetched_objects_cache", {})
    for name, objects in (("payments", payments), ("extensions", extensions)):
        queryset = getattr(booking, name).all()
        queryset._result_cache = list(objects)
        queryset._prefetch_done = True
        cache[name] = queryset
    return booking


def payment_create(
    *,
    booking: Booking,
    kind: str,
    amount_minor: int,
    extension: BookingExtension | None = None,
    retry_open_at: datetime | None = None,
    off_session_card: SavedCard | None = None,
) -> Payment:
    """Record an amount owed. Its provider idempotency key comes from its UUID: unique forever,
    so a retry reuses it and no other payment (even after a database reset) ever collides.
    ``off_session_card`` fixes the saved card every off-session attempt at it charges."""
    payment_id = uuid.uuid4()
    return Payment.objects.create(
        id=payment_id,
        booking=booking,
        extension=extension,
        kind=kind,
        provider=get_provider().name,
        amount_minor=amount_minor,
        currency=booking.currency,
        idempotency_key=f"payment-{payment_id}",
        retry_open_at=retry_open_at,
        off_session_customer_ref=off_session_card.customer_ref if off_session_card else "",
        off_session_method_ref=off_session_card.payment_method_ref if off_session_card else "",
    )


def payment_open(*, payment: Payment) -> Payment:
    """Create the provider-side payment (a PaymentIntent) and keep its id and client secret."""
    provider = get_provider()
    result = provider.create_payment(
        amount_minor=payment.amount_minor,
        currency=payment.currency.lower(),
        idempotency_key=payment.idempotency_key,
        metadata={"payment_id": str(payment.pk), "booking_id": str(payment.booking_id), "kind": payment.kind},
    )
    # Never overwrite a provider id already stored (e.g. an off-session charge that went through).
    stored = Payment.objects.filter(pk=payment.pk, provider_payment_id__isnull=True).update(
        provider_payment_id=result.id, client_secret=result.client_secret or "", retry_open_at=None
    )
    if not stored:
        payment.refresh_from_db()
        return payment
    payment.provider_payment_id = result.id
    payment.client_secret = result.client_secret or ""
    payment.retry_open_at = None
    return payment


def payment_abandon_unopened(*, payment: Payment) -> None:
    """The provider never took this payment (no provider id): nothing can be charged, so it is
    cancelled rather than left pending for ever."""
    Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING, provider_payment_id__isnull=True).update(
        status=PaymentStatus.CANCELLED
    )
    payment.status = PaymentStatus.CANCELLED


def holds_expire(
    *,
    now: datetime | None = None,
    car_park_id: int | None = None,
    car_park_ids: Sequence[int] | None = None,
    batch: int = 500,
) -> int:
    """Expire overdue holds and extensions (of some car parks, or all), giving their bays back.

    One query finds both kinds (this runs before every availability answer and search), then
    each is expired in its own transaction, oldest first.
    """
    now = now or clock.now()
    if car_park_id is not None:
        car_park_ids = [car_park_id]
    expired = 0
    for is_extension, pk in _overdue_holds(now, car_park_ids, batch):
        if is_extension:
            expired += extension_expire(extension_id=pk, now=now)
        else:
            expired += booking_expire(booking_id=pk, now=now)
    return expired


def _overdue_holds(now: datetime, car_park_ids: Sequence[int] | None, limit: int) -> list[tuple[bool, int]]:
    """(is an extension, id) of the overdue holds, oldest first.

    Plain SQL that both databases take: it runs before every search and availability answer, and
    building the same UNION through the ORM cost three times what the query itself does.
    """
    ids = list(car_park_ids) if car_park_ids is not None else []
    if car_park_ids is not None and not ids:
        return []
    of_car_parks = f"AND b.car_park_id IN ({', '.join(['%s'] * len(ids))})" if car_park_ids is not None else ""
    bookings, extensions = Booking._meta.db_table, BookingExtension._meta.db_table
    # The table names come from the models; every value is a parameter.
    query = f"""
        SELECT 0, b.id, b.hold_expires_at FROM {bookings} b
        WHERE b.status = %s AND b.hold_expires_at <= %s {of_car_parks}
        UNION ALL
        SELECT 1, e.id, e.hold_expires_at FROM {extensions} e JOIN {bookings} b ON b.id = e.booking_id
        WHERE e.status = %s AND e.hold_expires_at <= %s {of_car_parks}
        ORDER BY 3 LIMIT %s
    """  # noqa: S608
    # UTC: SQLite compares the stored text, which is written in UTC.
    utc_now = now.astimezone(UTC)
    params: list[Any] = [BookingStatus.HELD.value, utc_now, *ids, ExtensionStatus.HELD.value, utc_now, *ids, limit]
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return [(bool(is_extension), pk) for is_extension, pk, _ in cursor.fetchall()]


@transaction.atomic
def booking_expire(*, booking_id: int, now: datetime, force: bool = False) -> int:
    """End an unpaid hold whose time is up (``force``: now, e.g. the provider failed). Returns 1 if it did."""
    booking = Booking.objects.select_for_update().get(pk=booking_id)
    if booking.status != BookingStatus.HELD:
        return 0
    if not force and (booking.hold_expires_at is None or booking.hold_expires_at > now):
        return 0
    ledger.release(booking.car_park_id, booking.bay_type, booking.ledger_start, booking.ledger_end)
    booking.status = BookingStatus.EXPIRED
    booking.expired_at = now
    booking.save(update_fields=["status", "expired_at"])
    return 1


@transaction.atomic
def extension_expire(*, extension_id: int, now: datetime) -> int:
    extension = BookingExtension.objects.select_for_update().select_related("booking").get(pk=extension_id)
    if extension.status != ExtensionStatus.HELD or (extension.hold_expires_at and extension.hold_expires_at > now):
        return 0
    booking = extension.booking
    ledger.release(booking.car_park_id, booking.bay_type, extension.ledger_start, extension.ledger_end)
    extension.status = ExtensionStatus.EXPIRED
    extension.save(update_fields=["status"])
    return 1


# --- confirmation ----------------------------------------------------------------------------


def _confirm(booking: Booking, *, now: datetime) -> None:
    booking.status = BookingStatus.CONFIRMED
    booking.confirmed_at = now
    booking.hold_expires_at = None
    _save_with_new_code(booking, ["status", "confirmed_at", "hold_expires_at"])
    after_commit_notify(booking.pk, "confirmation")
    _after_commit_occupancy(booking.pk)


def _save_with_new_code(booking: Booking, fields: list[str]) -> None:
    """Give the booking a fresh gate code; a collision (32^8 codes) is retried, never kept."""
    for _ in range(10):
        booking.code = _new_code()
        try:
            with transaction.atomic():
                booking.save(update_fields=[*fields, "code"])
        except IntegrityError:
            continue
        return
    raise RuntimeError("could not find a free booking code")


def after_commit_notify(booking_id: int, kind: str, discriminator: str = "") -> None:
    from bookings import tasks

    transaction.on_commit(lambda: tasks.send_driver_message.delay(booking_id, kind, discriminator), robust=True)


def _after_commit_occupancy(booking_id: int) -> None:
    from bookings import tasks

    transaction.on_commit(lambda: tasks.publish_booking_occupancy.delay(booking_id), robust=True)


def _retake(booking: Booking, ledger_start: datetime, ledger_end: datetime) -> bool:
    """Try to take the bays again (a payment arrived after its hold expired)."""
    car_park = CarPark.objects.get(pk=booking.car_park_id)
    try:
        with transaction.atomic():
            ledger.reserve(car_park, booking.bay_type, ledger_start, ledger_end)
    except ledger.WindowFull:
        return False
    return True


@transaction.atomic
def payment_succeeded(*, payment: Payment, now: datetime | None = None) -> Payment:
    """Apply a successful payment once, whatever order or how often the provider reports it.

    A booking payment confirms its hold; if the hold had expired, the bays are taken again when
    free, otherwise (or if the booking was cancelled meanwhile) the payment is refunded in full.
    """
    now = now or clock.now()
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.status == PaymentStatus.SUCCEEDED:
        return payment
    payment.status = PaymentStatus.SUCCEEDED
    payment.succeeded_at = now
    payment.failure_code = ""
    payment.save(update_fields=["status", "succeeded_at", "failure_code"])
    booking = Booking.objects.select_for_update().get(pk=payment.booking_id)
    if payment.kind == PaymentKind.BOOKING:
        _apply_booking_payment(booking, payment, now)
    elif payment.kind == PaymentKind.EXTENSION:
        _apply_extension_payment(booking, payment, now)
    return payment


def _apply_booking_payment(booking: Booking, payment: Payment, now: datetime) -> None:
    if _bays_still_held(booking):
        _confirm(booking, now=now)
    elif booking.status in (BookingStatus.EXPIRED, BookingStatus.CANCELLED):
        refund_create(payment=payment, amount_minor=payment.amount_minor, reason="booking_not_available")
    else:  # already confirmed by another payment: never keep two
        refund_create(payment=payment, amount_minor=payment.amount_minor, reason="duplicate")


def _bays_still_held(booking: Booking) -> bool:
    """The hold is alive, or it expired and its bays could be taken again."""
    if booking.status == BookingStatus.HELD:
        return True
    return booking.status == BookingStatus.EXPIRED and _retake(booking, booking.ledger_start, booking.ledger_end)


def _extension_bays_still_held(booking: Booking, extension: BookingExtension) -> bool:
    if booking.status not in (BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN):
        return False
    if extension.status == ExtensionStatus.HELD:
        return True
    return (
        extension.status == ExtensionStatus.EXPIRED
        and not _extension_superseded(booking, extension)
        and _retake(booking, extension.ledger_start, extension.ledger_end)
    )


def _extension_superseded(booking: Booking, extension: BookingExtension) -> bool:
    """The stay moved on since this extension was priced: it ends elsewhere now, or a newer
    extension is waiting for payment. Applying it would sell the same hours twice."""
    return (
        booking.end != extension.old_end
        or booking.ledger_end != extension.ledger_start
        or booking.extensions.filter(status=ExtensionStatus.HELD).exclude(pk=extension.pk).exists()
    )


def _apply_extension_payment(booking: Booking, payment: Payment, now: datetime) -> None:
    extension = BookingExtension.objects.select_for_update().get(pk=payment.extension_id or 0)
    if _extension_bays_still_held(booking, extension):
        _apply_extension(booking, extension, now)
        return
    if extension.status == ExtensionStatus.HELD:
        ledger.release(booking.car_park_id, booking.bay_type, extension.ledger_start, extension.ledger_end)
        extension.status = ExtensionStatus.CANCELLED
        extension.save(update_fields=["status"])
    refund_create(payment=payment, amount_minor=payment.amount_minor, reason="extension_not_available")


def _apply_extension(booking: Booking, extension: BookingExtension, now: datetime) -> None:
    extension.status = ExtensionStatus.CONFIRMED
    extension.confirmed_at = now
    extension.hold_expires_at = None
    extension.save(update_fields=["status", "confirmed_at", "hold_expires_at"])
    booking.end = extension.new_end
    booking.ledger_end = extension.ledger_end
    booking.amount_minor += extension.amount_minor
    booking.tax_minor += (
        Money.from_minor(extension.amount_minor, booking.currency).tax_included(booking.tax_rate).to_minor()
    )
    booking.price_lines = [
        *booking.price_lines,
        {
            "kind": "extension",
            "description": f"Extension to {extension.new_end.isoformat()}",
            "amount_minor": extension.amount_minor,
            "starts_at": iso_utc(extension.old_end),
            "ends_at": iso_utc(extension.new_end),
        },
    ]
    booking.save(update_fields=["end", "ledger_end", "amount_minor", "tax_minor", "price_lines"])
    _after_commit_occupancy(booking.pk)


@transaction.atomic
def payment_failed(*, payment: Payment, failure_code: str) -> Payment:
    """Record a failed attempt. It never undoes a success that arrived first; the hold stays until it expires."""
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.status == PaymentStatus.PENDING:
        payment.status = PaymentStatus.FAILED
        payment.failure_code = failure_code[:64]
        payment.save(update_fields=["status", "failure_code"])
    return payment


# --- refunds ----------------------------------------------------------------------------------


def refund_create(*, payment: Payment, amount_minor: int, reason: str) -> Refund | None:
    """Book a refund inside the caller's transaction; the provider is called by a task on commit."""
    amount_minor = min(amount_minor, payment.amount_minor - payment.refunded_minor)
    if amount_minor <= 0:
        return None
    sequence = payment.refunds.count() + 1
    refund = Refund.objects.create(
        payment=payment,
        amount_minor=amount_minor,
        currency=payment.currency,
        reason=reason,
        idempotency_key=f"payment-{payment.pk}-refund-{sequence}",
    )
    payment.refunded_minor += amount_minor
    payment.save(update_fields=["refunded_minor"])
    from bookings import tasks

    transaction.on_commit(lambda: tasks.execute_refund.delay(refund.pk), robust=True)
    return refund


# A refund the provider has not acknowledged this long after it was booked lost its task (the
# broker was down at commit, or the retries ran out) and is queued again by the sweep...
REFUND_UNSENT_AFTER = timedelta(minutes=10)
# ...but only while the provider still remembers its idempotency key (Stripe keeps them 24 hours):
# after that a resend of a request that did reach the provider would refund twice.
REFUND_RESEND_WITHIN = timedelta(hours=23)


def refunds_unsent(*, now: datetime | None = None, batch: int = 100) -> tuple[list[int], int]:
    """Refunds to queue again, and how many are too old to resend safely (for a person to settle)."""
    now = now or clock.now()
    unsent = Refund.objects.filter(
        status=RefundStatus.PENDING, provider_refund_id__isnull=True, created_at__lte=now - REFUND_UNSENT_AFTER
    )
    resendable = unsent.filter(created_at__gt=now - REFUND_RESEND_WITHIN).order_by("created_at")
    too_old = unsent.filter(created_at__lte=now - REFUND_RESEND_WITHIN).count()
    return list(resendable.values_list("pk", flat=True)[:batch]), too_old


def refund_execute(*, refund_id: int) -> Refund:
    """Send a booked refund to the provider (idempotent: same key on every retry)."""
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status == RefundStatus.SUCCEEDED:
        return refund
    result = get_provider().refund(
        provider_payment_id=refund.payment.provider_payment_id or "",
        amount_minor=refund.amount_minor,
        idempotency_key=refund.idempotency_key,
        reason="requested_by_customer",
    )
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status != RefundStatus.SUCCEEDED:
            refund.provider_refund_id = result.id
            if result.status == "succeeded":
                refund.status = RefundStatus.SUCCEEDED
                refund.succeeded_at = clock.now()
            refund.save(update_fields=["provider_refund_id", "status", "succeeded_at"])
            if refund.status == RefundStatus.SUCCEEDED:
                after_commit_notify(refund.payment.booking_id, "refund", str(refund.pk))
    return refund


def paid_minor(booking: Booking) -> int:
    """What the driver has paid for this booking, net of refunds."""
    totals = booking.payments.filter(status=PaymentStatus.SUCCEEDED).aggregate(
        paid=Sum("amount_minor"), refunded=Sum("refunded_minor")
    )
    return (totals["paid"] or 0) - (totals["refunded"] or 0)


# --- cancellation -------------------------------------------------------------------------------


def cancellation_policy_sold_with(booking: Booking) -> CancellationPolicy:
    """The rule the driver was quoted when the bay was held."""
    return CancellationPolicy(
        free_until_hours_before_start=booking.free_cancellation_hours,
        late_refund_percent=booking.late_cancellation_refund_percent,
    )


def _refund_share(booking: Booking, share_of: int) -> None:
    """Refund ``share_of`` minor units across the booking's successful payments, newest first."""
    remaining = share_of
    for payment in booking.payments.select_for_update().filter(status=PaymentStatus.SUCCEEDED).order_by("-created_at"):
        if remaining <= 0:
            break
        refund = refund_create(payment=payment, amount_minor=remaining, reason="cancellation")
        remaining -= refund.amount_minor if refund else 0


def _release_held_extensions(booking: Booking) -> None:
    for extension in booking.extensions.select_for_update().filter(status=ExtensionStatus.HELD):
        ledger.release(booking.car_park_id, booking.bay_type, extension.ledger_start, extension.ledger_end)
        extension.status = ExtensionStatus.CANCELLED
        extension.save(update_fields=["status"])


@transaction.atomic
def booking_cancel(
    *, booking_id: int, now: datetime | None = None, reason: str = "driver", full_refund: bool = False
) -> Booking:
    """Cancel a held or confirmed booking, give its bays back and refund per the car park's policy.

    ``full_refund`` is for cancellations the operator causes (a closure). Raises
    ``InvalidTransition`` (409) once the car has entered or the booking has ended.
    """
    now = now or clock.now()
    booking = Booking.objects.select_for_update().select_related("car_park").get(pk=booking_id)
    if booking.status not in (BookingStatus.HELD, BookingStatus.CONFIRMED):
        raise InvalidTransition(f"A booking that is {booking.status} cannot be cancelled.")
    was_confirmed = booking.status == BookingStatus.CONFIRMED
    ledger.release(booking.car_park_id, booking.bay_type, booking.ledger_start, booking.ledger_end)
    _release_held_extensions(booking)
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = now
    booking.cancellation_reason = reason
    booking.hold_expires_at = None
    booking.save(update_fields=["status", "cancelled_at", "cancellation_reason", "hold_expires_at"])
    if was_confirmed:
        paid = Money.from_minor(paid_minor(booking), booking.currency)
        policy = cancellation_policy_sold_with(booking)
        refund = paid if full_refund else policy.refund_for(paid, now=now, start=booking.start)
        _refund_share(booking, refund.to_minor())
        after_commit_notify(booking.pk, "cancellation")
        _after_commit_occupancy(booking.pk)
    return booking


# --- extension --------------------------------------------------------------------------------


def booking_extend(*, booking_id: int, new_end: datetime, now: datetime | None = None) -> BookingExtension:
    """Move a confirmed booking's end later: bays for the extra time, priced as the whole new stay
    (daily caps included) minus what the stay already cost. Free extensions apply at once; others
    are held until their payment succeeds."""
    now = now or clock.now()
    holds_expire(now=now, car_park_id=Booking.objects.values_list("car_park_id", flat=True).get(pk=booking_id))
    with transaction.atomic():
        booking = Booking.objects.select_for_update().select_related("car_park").get(pk=booking_id)
        if booking.status not in (BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN):
            raise InvalidTransition("Only a confirmed booking can be extended; pay for it first.")
        if new_end <= booking.end:
            raise InvalidInput("end", "The new end must be after the current end.", code="not_later")
        if booking.extensions.filter(status=ExtensionStatus.HELD).exists():
            raise InvalidTransition("An extension is already waiting for payment.", code="extension_pending")
        car_park = booking.car_park
        validate_window(car_park, booking.start, new_end, now=min(now, booking.start))
        if new_end <= now:
            raise InvalidInput("end", "The new end is in the past.", code="end_in_past")
        quote = quote_for_window(car_park, booking.start, new_end)
        extra = max(quote.amount_minor - booking.amount_minor, 0)
        new_ledger_end = max(ledger.slot_ceil(new_end), booking.ledger_end)
        extension = BookingExtension.objects.create(
            booking=booking,
            old_end=booking.end,
            new_end=new_end,
            ledger_start=booking.ledger_end,
            ledger_end=new_ledger_end,
            amount_minor=extra,
            currency=booking.currency,
            hold_expires_at=now + timedelta(minutes=settings.BOOKING_HOLD_MINUTES),
        )
        try:
            ledger.reserve(car_park, booking.bay_type, extension.ledger_start, extension.ledger_end)
        except ledger.WindowFull:
            raise WindowFullError("No bay is free for the extra time.") from None
        payment = None
        if extra == 0:
            _apply_extension(booking, extension, now)
        else:
            payment = payment_create(
                booking=booking, kind=PaymentKind.EXTENSION, amount_minor=extra, extension=extension
            )
    if payment is not None:
        try:
            payment_open(payment=payment)
        except PaymentProviderError as exc:
            extension_expire_now(extension.pk)
            payment_abandon_unopened(payment=payment)
            raise PaymentUnavailable("The payment provider cannot take this payment now.") from exc
    return extension


@transaction.atomic
def extension_expire_now(extension_id: int) -> None:
    BookingExtension.objects.filter(pk=extension_id).update(hold_expires_at=clock.now())
    extension_expire(extension_id=extension_id, now=clock.now())


# --- inventory guards (registered with backend.carparks.services) -------------------------------


def _live_bookings_overlapping(
    car_park_id: int, start: datetime, end: datetime, bay_type: str | None = None
) -> list[Booking]:
    bookings = Booking.objects.filter(
        car_park_id=car_park_id, status__in=LIVE_STATUSES, ledger_start__lt=end, ledger_end__gt=start
    )
    if bay_type:
        bookings = bookings.filter(bay_type=bay_type)
    return list(bookings.order_by("start"))


def _booking_summary(booking: Booking) -> dict[str, Any]:
    return {
        "id": booking.pk,
        "status": booking.status,
        "start": iso_utc(booking.start),
        "end": iso_utc(booking.end),
        "bay_type": booking.bay_type,
        "plate": booking.plate,
    }


def guard_inventory_change(car_park: CarPark, changed: frozenset[str]) -> None:
    """Refuse a change that breaks live bookings, listing them; otherwise bring the ledger in line.

    A booking's price and hours were sold in the car park's currency and local time: those cannot
    change under it (the operator cancels or waits for such bookings first)."""
    if changed & {inventory.CURRENCY, inventory.HOURS}:
        live = list(Booking.objects.filter(car_park_id=car_park.pk, status__in=LIVE_STATUSES).order_by("start"))
        if inventory.CURRENCY in changed:
            _refuse_if_any(live, "Bookings are live in the current currency; change it once they have ended.")
        if inventory.HOURS in changed:
            periods = periods_of(car_park)
            _refuse_if_any(
                [b for b in live if not is_open_throughout(periods, car_park.zone, b.start, b.end)],
                "Live bookings fall outside the new opening hours; cancel or move them first.",
            )
    if inventory.CAPACITY in changed:
        _guard_capacity_change(car_park)


def _refuse_if_any(affected: list[Booking], message: str) -> None:
    if affected:
        raise ChangeAffectsBookings(
            f"{len(affected)} bookings: {message}", extra={"affected_bookings": [_booking_summary(b) for b in affected]}
        )


def _guard_capacity_change(car_park: CarPark) -> None:
    """Refuse a capacity cut below what is sold (listing the bookings); otherwise update the ledger."""
    now = clock.now()
    shortfalls = ledger.capacity_shortfalls(car_park, since=now)
    if shortfalls:
        affected: dict[int, Booking] = {}
        for shortfall in shortfalls:
            for booking in _live_bookings_overlapping(
                car_park.pk, shortfall.starts_at, shortfall.starts_at + ledger.SLOT, shortfall.bay_type
            ):
                affected[booking.pk] = booking
        raise CapacityBelowSold(
            f"More bays are sold than the new capacity allows in {len(shortfalls)} slots; "
            "cancel or move the affected bookings first.",
            extra={
                "affected_bookings": [_booking_summary(b) for b in sorted(affected.values(), key=lambda b: b.start)]
            },
        )
    try:
        with transaction.atomic():
            ledger.apply_capacity(car_park, since=now)
    except IntegrityError:  # a hold slipped in between the check and the update
        raise CapacityBelowSold("Bays were sold meanwhile; try again.", headers={"Retry-After": "1"}) from None


def guard_closure(closure: Closure, cancel_affected_bookings: bool) -> None:
    """A closure over live bookings is refused with their list, unless the operator confirmed:
    then each is cancelled with a full refund (and its driver told), and the slots closed."""
    # Slot overlap, not stay overlap: a stay ending 10:05 still holds the 10:00 slot a 10:10 closure zeroes.
    affected = _live_bookings_overlapping(closure.car_park_id, *ledger.ledger_range(closure.starts_at, closure.ends_at))
    if affected and not cancel_affected_bookings:
        raise ClosureAffectsBookings(
            f"{len(affected)} bookings overlap this closure. Send cancel_affected_bookings=true to cancel "
            "and refund them in full.",
            extra={"affected_bookings": [_booking_summary(b) for b in affected]},
        )
    for booking in affected:
        if booking.status == BookingStatus.CHECKED_IN:
            raise ClosureAffectsBookings(
                "A vehicle is parked under a booking that overlaps the closure; it cannot be cancelled.",
                extra={"affected_bookings": [_booking_summary(booking)]},
            )
        booking_cancel(booking_id=booking.pk, reason="car_park_closed", full_refund=True)
    ledger.close_slots(closure.car_park, closure)


def on_closure_removed(closure: Closure) -> None:
    ledger.reopen_slots(closure.car_park, closure.starts_at, closure.ends_at)


def no_shows_mark(*, now: datetime | None = None, batch: int = 500) -> int:
    """Confirmed bookings whose end passed without a check-in become no-shows; their bays are freed."""
    now = now or clock.now()
    due = Booking.objects.filter(status=BookingStatus.CONFIRMED, end__lte=now).order_by("end")
    marked = 0
    for booking_id in list(due.values_list("pk", flat=True)[:batch]):
        with transaction.atomic():
            booking = Booking.objects.select_for_update().get(pk=booking_id)
            if booking.status != BookingStatus.CONFIRMED:
                continue
            ledger.release(booking.car_park_id, booking.bay_type, booking.ledger_start, booking.ledger_end)
            booking.status = BookingStatus.NO_SHOW
            booking.save(update_fields=["status"])
            _after_commit_occupancy(booking.pk)
            marked += 1
    return marked


def bookings_visible_to(user: User) -> Q:
    """Drivers see their own bookings; operator staff those at their company's car parks."""
    if user.is_operator:
        return Q(car_park__company_id=user.company_id)
    if user.is_driver:
        return Q(driver_id=user.pk)
    return Q(pk__in=[])
