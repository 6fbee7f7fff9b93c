"""Refusals of the bookings app, each with its HTTP status and stable code."""

from backend.api.errors import Conflict, DomainError, InvalidInput


class WindowFullError(Conflict):
    code = "window_full"


class UnpaidHoldLimit(Conflict):
    code = "unpaid_hold_limit"


class InvalidTransition(Conflict):
    code = "invalid_state"


class CapacityBelowSold(Conflict):
    code = "capacity_below_sold"


class ClosureAffectsBookings(Conflict):
    code = "closure_affects_bookings"


class ChangeAffectsBookings(Conflict):
    code = "change_affects_bookings"


# --- at the gate ---


class BookingNotFound(DomainError):
    status = 404
    code = "booking_not_found"
    title = "Not found"


class TooEarly(Conflict):
    code = "too_early"


class AlreadyInside(Conflict):
    code = "already_inside"


class NotInside(Conflict):
    code = "not_inside"


class BookingNotActive(Conflict):
    code = "booking_not_active"


class PaymentUnavailable(DomainError):
    status = 503
    code = "payment_provider_unavailable"
    title = "Service unavailable"


__all__ = [
    "AlreadyInside",
    "BookingNotActive",
    "BookingNotFound",
    "CapacityBelowSold",
    "ClosureAffectsBookings",
    "InvalidInput",
    "InvalidTransition",
    "NotInside",
    "PaymentUnavailable",
    "TooEarly",
    "UnpaidHoldLimit",
    "WindowFullError",
]
