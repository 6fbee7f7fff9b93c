"""Model rules: role/company consistency enforced by the database; plate normalisation."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from backend.accounts.models import Role, User, normalise_plate
from tests.factories import CompanyFactory


def _create_refused(**fields: object) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(**fields)


@pytest.mark.django_db
def test_database_refuses_operator_without_company():
    _create_refused(email="lonely.op@example.test", role=Role.OPERATOR, company=None)
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_database_refuses_marketing_without_company():
    _create_refused(email="lonely.mkt@example.test", role=Role.MARKETING, company=None)
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_database_refuses_driver_with_company():
    company = CompanyFactory(name="Acme Parking")
    _create_refused(email="driver@example.test", role=Role.DRIVER, company=company)
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_database_refuses_platform_admin_with_company():
    company = CompanyFactory(name="Acme Parking")
    _create_refused(email="admin@example.test", role=Role.PLATFORM_ADMIN, company=company)
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_database_refuses_company_admin_flag_on_marketing():
    company = CompanyFactory(name="Acme Parking")
    _create_refused(email="mkt@example.test", role=Role.MARKETING, company=company, is_company_admin=True)
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_database_refuses_changing_operator_into_driver_while_keeping_company(operator):
    operator.role = Role.DRIVER
    operator.is_company_admin = False
    with pytest.raises(IntegrityError), transaction.atomic():
        operator.save()
    operator.refresh_from_db()
    assert operator.role == Role.OPERATOR
    assert operator.company is not None


@pytest.mark.django_db
def test_database_accepts_consistent_roles():
    company = CompanyFactory(name="Acme Parking")
    User.objects.create(email="d@example.test", role=Role.DRIVER)
    User.objects.create(email="o@example.test", role=Role.OPERATOR, company=company, is_company_admin=True)
    User.objects.create(email="m@example.test", role=Role.MARKETING, company=company)
    assert User.objects.count() == 3


@pytest.mark.django_db
def test_database_refuses_same_email_in_another_case(driver):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(email="DRIVER@example.test", role=Role.DRIVER)
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("AB12CDE", "AB12CDE"),
        ("ab12cde", "AB12CDE"),
        ("ab12-cde", "AB12CDE"),
        ("AB12 CDE", "AB12CDE"),
        ("  ab 12 - cde  ", "AB12CDE"),
        ("a-b", "AB"),
        ("1234567890", "1234567890"),
        ("12-34-56-78-90", "1234567890"),
    ],
)
def test_normalise_plate_upper_cases_and_drops_spaces_and_dashes(raw, expected):
    assert normalise_plate(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "AB12!CDE",
        "ÄB12",
        "AB_12",
        "AB.12",
        "AB12\tCDE",
        "AB\n12",
        "",
        "A",
        " - ",
        "A-",
        "12345678901",
    ],
)
def test_normalise_plate_refuses_other_characters_and_bad_lengths(raw):
    with pytest.raises(ValueError, match="plate"):
        normalise_plate(raw)


def test_normalise_plate_refuses_none():
    with pytest.raises(ValueError, match="plate"):
        normalise_plate(None)  # type: ignore[arg-type]


def test_normalise_plate_refuses_trailing_newline():
    with pytest.raises(ValueError, match="plate"):
        normalise_plate("AB12CDE\n")
