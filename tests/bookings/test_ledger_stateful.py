"""A hypothesis state machine over the booking services: after every step, the capacity ledger
equals what the live bookings (and held extensions) imply, and no slot is sold beyond capacity."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import F
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from backend.api.errors import DomainError
from backend.carparks import services as carparks
from backend.core import clock
from bookings import ledger, services
from bookings.models import LIVE_STATUSES, Booking, BookingExtension, BookingStatus, CapacitySlot, ExtensionStatus
from tests.bookings.helpers import vehicle_of
from tests.factories import CarParkFactory, CompanyFactory, UserFactory

SLOT = timedelta(minutes=15)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        company = CompanyFactory()
        self.operator = UserFactory(role="operator", company=company, is_company_admin=True)
        self.car_park = CarParkFactory(company=company, standard_bays=3, accessible_bays=1)
        self.drivers = [UserFactory() for _ in range(4)]
        for driver in self.drivers:
            vehicle_of(driver)
        self.now = clock.now()
        self.day = (self.now + timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)

    def _bookings(self) -> list[Booking]:
        return list(Booking.objects.filter(car_park=self.car_park).order_by("pk"))

    @rule(
        driver=st.integers(0, 3),
        offset=st.integers(0, 16),
        length=st.integers(1, 12),
        bay_type=st.sampled_from(["standard", "accessible"]),
    )
    def hold(self, driver: int, offset: int, length: int, bay_type: str) -> None:
        start = self.day + SLOT * offset
        with contextlib.suppress(DomainError):
            services.booking_hold(
                driver=self.drivers[driver],
                car_park_id=self.car_park.pk,
                vehicle_id=vehicle_of(self.drivers[driver]).pk,
                start=start,
                end=start + SLOT * length,
                bay_type=bay_type,
                now=self.now,
            )

    @rule(pick=st.integers(0, 50))
    def pay(self, pick: int) -> None:
        held = list(Booking.objects.filter(car_park=self.car_park, status=BookingStatus.HELD).order_by("pk"))
        if held:
            booking = held[pick % len(held)]
            services.payment_succeeded(payment=booking.payments.first(), now=self.now)

    @rule(minutes=st.integers(1, 15))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        services.holds_expire(now=self.now)

    @rule(pick=st.integers(0, 50))
    def cancel(self, pick: int) -> None:
        live = [b for b in self._bookings() if b.status in LIVE_STATUSES]
        if live:
            services.booking_cancel(booking_id=live[pick % len(live)].pk, now=self.now)

    @rule(pick=st.integers(0, 50), extra=st.integers(1, 8))
    def extend(self, pick: int, extra: int) -> None:
        confirmed = [b for b in self._bookings() if b.status == BookingStatus.CONFIRMED]
        if confirmed:
            booking = confirmed[pick % len(confirmed)]
            with contextlib.suppress(DomainError):
                services.booking_extend(booking_id=booking.pk, new_end=booking.end + SLOT * extra, now=self.now)

    @rule()
    def pay_extension(self) -> None:
        extension = BookingExtension.objects.filter(
            booking__car_park=self.car_park, status=ExtensionStatus.HELD
        ).first()
        if extension is not None:
            services.payment_succeeded(payment=extension.payments.first(), now=self.now)

    @rule(bays=st.integers(0, 5))
    def change_capacity(self, bays: int) -> None:
        with contextlib.suppress(DomainError):
            carparks.carpark_update(
                actor=self.operator, car_park=self.car_park, fields={"standard_bays": bays}, opening_periods=None
            )
        self.car_park.refresh_from_db()

    @invariant()
    def ledger_equals_live_bookings(self) -> None:
        spans: list[tuple[int, str, Any, Any]] = list(
            Booking.objects.filter(car_park=self.car_park, status__in=LIVE_STATUSES).values_list(
                "car_park_id", "bay_type", "ledger_start", "ledger_end"
            )
        )
        spans += list(
            BookingExtension.objects.filter(booking__car_park=self.car_park, status=ExtensionStatus.HELD).values_list(
                "booking__car_park_id", "booking__bay_type", "ledger_start", "ledger_end"
            )
        )
        expected = ledger.expected_reserved(spans)
        actual = {
            (slot.car_park_id, slot.bay_type, slot.starts_at): slot.reserved
            for slot in CapacitySlot.objects.filter(car_park=self.car_park, reserved__gt=0)
        }
        assert actual == expected
        assert not CapacitySlot.objects.filter(car_park=self.car_park, reserved__gt=F("capacity")).exists()


@pytest.mark.django_db
def test_ledger_always_matches_live_bookings() -> None:
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
