"""Every write to the inventory: one function per use case, in a transaction, audited."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from backend.accounts.models import User
from backend.audit.services import audit_record
from backend.carparks.hours import Period
from backend.carparks.models import BOOKING_TERM_FIELDS, CarPark, Closure, OpeningPeriod
from backend.carparks.selectors import carpark_snapshot
from backend.core import clock

# Apps that sell the inventory (bookings) register guards here; a guard raises a DomainError
# listing the affected bookings when a change would break what is sold. The inventory cannot
# import bookings (dependencies point one way), so bookings plugs itself in at start-up.
# A change guard is told which terms of sale changed: CAPACITY, CURRENCY or HOURS.
CAPACITY, CURRENCY, HOURS = "capacity", "currency", "hours"
ChangeGuard = Callable[[CarPark, frozenset[str]], None]
ClosureGuard = Callable[[Closure, bool], None]
ClosureRemovedHook = Callable[[Closure], None]
change_guards: list[ChangeGuard] = []
closure_guards: list[ClosureGuard] = []
closure_removed_hooks: list[ClosureRemovedHook] = []

EDITABLE_FIELDS = (
    "name",
    "address",
    "latitude",
    "longitude",
    "timezone",
    "currency",
    "standard_bays",
    "accessible_bays",
    "ev_charging_bays",
    "covered",
    "height_limit_m",
    *BOOKING_TERM_FIELDS,
    "internal_notes",
)


def _terms_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> frozenset[str]:
    """Which terms of sale a change touched: the time zone moves every opening hour with it."""
    changed = {
        CAPACITY: before["bays"] != after["bays"],
        CURRENCY: before["currency"] != after["currency"],
        HOURS: before["timezone"] != after["timezone"] or before["opening_hours"] != after["opening_hours"],
    }
    return frozenset(term for term, differs in changed.items() if differs)


def _replace_opening_periods(car_park: CarPark, periods: Sequence[Period]) -> None:
    car_park.opening_periods.all().delete()
    OpeningPeriod.objects.bulk_create(
        OpeningPeriod(car_park=car_park, weekday=p.weekday, opens=p.opens, closes=p.closes, overnight=p.overnight)
        for p in periods
    )


@transaction.atomic
def carpark_create(*, actor: User, fields: Mapping[str, Any], opening_periods: Sequence[Period]) -> CarPark:
    """Create a car park for the actor's company."""
    if actor.company_id is None:
        raise PermissionDenied("Only a company's operator staff create car parks.")
    car_park = CarPark(company_id=actor.company_id, **{k: v for k, v in fields.items() if k in EDITABLE_FIELDS})
    car_park.full_clean(exclude=["company"])
    car_park.save()
    _replace_opening_periods(car_park, opening_periods)
    car_park.refresh_from_db()
    audit_record(actor=actor, action="carpark.create", target=car_park, before=None, after=carpark_snapshot(car_park))
    return car_park


@transaction.atomic
def carpark_update(
    *, actor: User, car_park: CarPark, fields: Mapping[str, Any], opening_periods: Sequence[Period] | None
) -> CarPark:
    """Change a car park. The guards refuse a change that breaks what is sold: capacity cut below
    the bays sold, or currency, time zone or opening hours changed under live bookings."""
    car_park = CarPark.objects.select_for_update().get(pk=car_park.pk)
    before = carpark_snapshot(car_park)
    for name, value in fields.items():
        if name in EDITABLE_FIELDS:
            setattr(car_park, name, value)
    car_park.full_clean(exclude=["company"])
    car_park.save()
    if opening_periods is not None:
        _replace_opening_periods(car_park, opening_periods)
    car_park.refresh_from_db()
    after = carpark_snapshot(car_park)
    changed = _terms_changed(before, after)
    if changed:
        for guard in change_guards:
            guard(car_park, changed)
    if after != before:
        audit_record(actor=actor, action="carpark.update", target=car_park, before=before, after=after)
    return car_park


@transaction.atomic
def carpark_archive(*, actor: User, car_park: CarPark) -> None:
    """Take a car park out of the catalogue; its history (bookings, occupancy) is kept."""
    car_park = CarPark.objects.select_for_update().get(pk=car_park.pk)
    before = carpark_snapshot(car_park)
    car_park.archived_at = clock.now()
    car_park.save(update_fields=["archived_at", "updated_at"])
    audit_record(
        actor=actor, action="carpark.archive", target=car_park, before=before, after=carpark_snapshot(car_park)
    )


def _closure_snapshot(closure: Closure) -> dict[str, Any]:
    return {
        "car_park": closure.car_park_id,
        "starts_at": closure.starts_at.isoformat(),
        "ends_at": closure.ends_at.isoformat(),
        "reason": closure.reason,
    }


@transaction.atomic
def closure_create(
    *,
    actor: User,
    car_park: CarPark,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    cancel_affected_bookings: bool = False,
) -> Closure:
    """Close a car park for a period. Guards (bookings) refuse it while bookings overlap it, listing
    them, unless ``cancel_affected_bookings``: then those bookings are cancelled and refunded."""
    CarPark.objects.select_for_update().get(pk=car_park.pk)
    closure = Closure(car_park=car_park, starts_at=starts_at, ends_at=ends_at, reason=reason)
    closure.full_clean()
    closure.save()
    for guard in closure_guards:
        guard(closure, cancel_affected_bookings)
    audit_record(actor=actor, action="closure.create", target=closure, before=None, after=_closure_snapshot(closure))
    return closure


@transaction.atomic
def closure_delete(*, actor: User, closure: Closure) -> None:
    before = _closure_snapshot(closure)
    audit_record(actor=actor, action="closure.delete", target=closure, before=before, after=None)
    closure.delete()
    for hook in closure_removed_hooks:
        hook(closure)
