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


class PaymentUnavailable(DomainError):
    status = 503
    code = "payment_provider_unavailable"
    title = "Service unavailable"


__all__ = [
    "CapacityBelowSold",
    "ClosureAffectsBookings",
    "InvalidInput",
    "InvalidTransition",
    "PaymentUnavailable",
    "UnpaidHoldLimit",
    "WindowFullError",
]
