"""Shared fixtures: users of each role, car parks, API clients signed in with JWT."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from backend.accounts.models import Company, Role, User
from backend.carparks.models import CarPark
from tests.factories import CarParkFactory, CompanyFactory, UserFactory


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres`` are skipped, with the reason printed, on SQLite."""
    from django.conf import settings

    if "postgresql" in settings.DATABASES["default"]["ENGINE"]:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL): real concurrent transactions and row locks")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def company(db: Any) -> Company:
    return CompanyFactory(name="Acme Parking")


@pytest.fixture
def other_company(db: Any) -> Company:
    return CompanyFactory(name="Rival Parking")


@pytest.fixture
def operator(company: Company) -> User:
    return UserFactory(role=Role.OPERATOR, company=company, is_company_admin=True, email="op@acme.test")


@pytest.fixture
def operator_staff(company: Company) -> User:
    return UserFactory(role=Role.OPERATOR, company=company, email="staff@acme.test")


@pytest.fixture
def other_operator(other_company: Company) -> User:
    return UserFactory(role=Role.OPERATOR, company=other_company, is_company_admin=True, email="op@rival.test")


@pytest.fixture
def marketing(company: Company) -> User:
    return UserFactory(role=Role.MARKETING, company=company, email="mkt@acme.test")


@pytest.fixture
def driver(db: Any) -> User:
    return UserFactory(role=Role.DRIVER, email="driver@example.test")


@pytest.fixture
def other_driver(db: Any) -> User:
    return UserFactory(role=Role.DRIVER, email="other.driver@example.test")


@pytest.fixture
def api() -> Callable[[User | None], APIClient]:
    """``api(user)`` is a client signed in as ``user`` (``api(None)``: anonymous)."""
    return client_for


@pytest.fixture
def car_park(company: Company) -> CarPark:
    return CarParkFactory(company=company)


@pytest.fixture
def other_car_park(other_company: Company) -> CarPark:
    return CarParkFactory(company=other_company, name="Rival Central")
