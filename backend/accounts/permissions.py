"""Role checks. Object scoping (own company, own bookings) is done by querysets, giving 404."""

from typing import Any

from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from backend.accounts.models import User


def _user(request: Request) -> Any:
    return request.user


def acting_user(request: Request) -> User:
    """The signed-in user of a view whose permission classes already required one."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


def company_id_of(request: Request) -> int | None:
    return getattr(request.user, "company_id", None)


class IsDriver(BasePermission):
    message = "Only drivers may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = _user(request)
        return bool(user and user.is_authenticated and user.is_driver)


class IsOperator(BasePermission):
    message = "Only operator staff may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = _user(request)
        return bool(user and user.is_authenticated and user.is_operator)


class IsCompanyAdmin(BasePermission):
    message = "Only a company admin may manage the company's staff."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = _user(request)
        return bool(user and user.is_authenticated and user.is_operator and user.is_company_admin)


class IsCompanyMember(BasePermission):
    """Operator staff or marketing of some company."""

    message = "Only a company's staff may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = _user(request)
        return bool(user and user.is_authenticated and user.company_id is not None)


class ReadAnyoneWriteOperator(BasePermission):
    """Everyone (even anonymous) reads; only operator staff write."""

    message = "Only operator staff may change car parks."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        user = _user(request)
        return bool(user and user.is_authenticated and user.is_operator)
