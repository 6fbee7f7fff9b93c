"""Demo data: one operator company with about 20 car parks in Birmingham, drivers, marketing."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from backend.accounts.models import Company, Role, User, Vehicle
from backend.carparks.models import CarPark, OpeningPeriod

DEMO_PASSWORD = "park-demo-2026"
DEMO_COMPANY = "Midland Parking Ltd"
CITY_CENTRE = (52.4797, -1.9026)

# name, address, lat, lng, standard, accessible, ev, covered, height limit, hours
# hours: "24/7", "day" (Mon-Sat 07:00-22:00, Sun 09:00-18:00), "night" (adds a Fri/Sat overnight span)
CAR_PARKS: list[tuple[str, str, float, float, int, int, int, bool, str | None, str]] = [
    ("Bullring East", "Moor Street Queensway, B5 4BU", 52.4776, -1.8934, 820, 30, 24, True, "2.00", "day"),
    ("New Street Station", "Station Street, B2 4QA", 52.4774, -1.8990, 440, 16, 12, True, "1.98", "24/7"),
    ("Grand Central", "Navigation Street, B2 4BJ", 52.4770, -1.9017, 300, 12, 8, True, "2.00", "24/7"),
    ("Mailbox", "Wharfside Street, B1 1RD", 52.4758, -1.9077, 650, 20, 20, True, "2.10", "night"),
    ("Brindleyplace", "Sheepcote Street, B16 8AE", 52.4776, -1.9142, 880, 24, 16, True, "2.05", "day"),
    ("Library of Birmingham", "Cambridge Street, B1 2ND", 52.4797, -1.9086, 210, 10, 6, False, None, "day"),
    ("Snow Hill", "Livery Street, B3 1EU", 52.4837, -1.8993, 520, 18, 10, True, "2.00", "24/7"),
    ("Moor Street", "Park Street, B5 5JP", 52.4792, -1.8918, 360, 12, 6, True, "1.90", "day"),
    ("Millennium Point", "Curzon Street, B4 7XG", 52.4829, -1.8868, 600, 20, 30, True, "2.10", "day"),
    ("Jewellery Quarter", "Vyse Street, B18 6HF", 52.4886, -1.9115, 180, 6, 4, False, None, "day"),
    ("Arena Birmingham", "King Edwards Road, B1 2AA", 52.4794, -1.9150, 1200, 40, 20, False, None, "night"),
    ("Colmore Row", "Newhall Street, B3 3AS", 52.4817, -1.9010, 240, 8, 4, True, "1.95", "day"),
    ("Martineau Place", "Corporation Street, B2 4UW", 52.4810, -1.8967, 330, 10, 8, True, "2.00", "day"),
    ("Broad Street", "Broad Street, B15 1DT", 52.4752, -1.9160, 690, 20, 10, False, None, "night"),
    ("Digbeth Coach Station", "Digbeth High Street, B5 6DY", 52.4745, -1.8856, 250, 8, 6, False, None, "24/7"),
    ("Five Ways", "Islington Row, B15 1LD", 52.4714, -1.9191, 400, 12, 12, True, "2.00", "day"),
    ("Holloway Circus", "Smallbrook Queensway, B5 4HP", 52.4745, -1.8997, 500, 16, 10, True, "1.95", "24/7"),
    ("Eastside City Park", "Jennens Road, B4 7EJ", 52.4825, -1.8837, 280, 8, 12, False, None, "day"),
    ("Old Square", "Upper Priory, B4 6BS", 52.4827, -1.8956, 220, 8, 4, True, "1.85", "day"),
    ("Edgbaston Village", "Harborne Road, B15 3DH", 52.4686, -1.9285, 160, 6, 8, False, None, "day"),
]

USERS: list[dict[str, Any]] = [
    {"email": "admin@demo.parking", "role": Role.PLATFORM_ADMIN, "first_name": "Platform", "last_name": "Admin"},
    {
        "email": "operator@demo.parking",
        "role": Role.OPERATOR,
        "first_name": "Olivia",
        "last_name": "Operator",
        "is_company_admin": True,
    },
    {"email": "staff@demo.parking", "role": Role.OPERATOR, "first_name": "Sam", "last_name": "Staff"},
    {"email": "marketing@demo.parking", "role": Role.MARKETING, "first_name": "Maya", "last_name": "Marketing"},
    {
        "email": "driver1@demo.parking",
        "role": Role.DRIVER,
        "first_name": "Dev",
        "last_name": "Driver",
        "plates": ["BD51 SMR"],
    },
    {
        "email": "driver2@demo.parking",
        "role": Role.DRIVER,
        "first_name": "Ada",
        "last_name": "Driver",
        "plates": ["KX19-ABC", "LN68 XYZ"],
    },
    {
        "email": "driver3@demo.parking",
        "role": Role.DRIVER,
        "first_name": "Raj",
        "last_name": "Driver",
        "plates": ["YH70 PRK"],
    },
]


def _periods(kind: str) -> list[tuple[int, time, time, bool]]:
    if kind == "24/7":
        return [(day, time(0), time(0), True) for day in range(7)]
    periods = [(day, time(7), time(22), False) for day in range(6)] + [(6, time(9), time(18), False)]
    if kind == "night":  # Friday and Saturday evenings run past midnight
        periods[4] = (4, time(7), time(2), True)
        periods[5] = (5, time(7), time(2), True)
    return periods


class Command(BaseCommand):
    help = "Create (or bring up to date) the demo: an operator company, ~20 Birmingham car parks, users. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", default=DEMO_PASSWORD, help="Password for every demo account.")
        parser.add_argument("--quiet", action="store_true", help="Print only the sign-in summary.")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        company, _ = Company.objects.get_or_create(name=DEMO_COMPANY, defaults={"country": "GB"})
        for index, row in enumerate(CAR_PARKS, start=1):
            self._car_park(company, row)
            if not options["quiet"]:
                self.stdout.write(f"[{index:>2}/{len(CAR_PARKS)}] car park {row[0]}")
        for spec in USERS:
            self._user(company, spec, options["password"])
        self.stdout.write(self.style.SUCCESS(self._summary(options["password"])))

    def _car_park(
        self, company: Company, row: tuple[str, str, float, float, int, int, int, bool, str | None, str]
    ) -> None:
        name, address, lat, lng, standard, accessible, ev, covered, height, hours = row
        car_park, _ = CarPark.objects.update_or_create(
            company=company,
            name=name,
            defaults={
                "address": f"{address}, Birmingham",
                "latitude": lat,
                "longitude": lng,
                "timezone": "Europe/London",
                "currency": "GBP",
                "standard_bays": standard,
                "accessible_bays": accessible,
                "ev_charging_bays": ev,
                "covered": covered,
                "height_limit_m": Decimal(height) if height else None,
                "archived_at": None,
            },
        )
        car_park.opening_periods.all().delete()
        OpeningPeriod.objects.bulk_create(
            OpeningPeriod(car_park=car_park, weekday=d, opens=o, closes=c, overnight=n)
            for d, o, c, n in _periods(hours)
        )

    def _user(self, company: Company, spec: dict[str, Any], password: str) -> None:
        spec = dict(spec)
        plates = spec.pop("plates", [])
        email = spec.pop("email")
        if spec["role"] in (Role.OPERATOR, Role.MARKETING):
            spec["company"] = company
        user = User.objects.filter(email=email).first() or User(email=email)
        for key, value in spec.items():
            setattr(user, key, value)
        if spec["role"] == Role.PLATFORM_ADMIN:
            user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        for plate in plates:
            Vehicle.objects.get_or_create(owner=user, plate=plate.replace(" ", "").replace("-", "").upper())

    def _summary(self, password: str) -> str:
        lat, lng = CITY_CENTRE
        return (
            f"\nDemo ready: {len(CAR_PARKS)} car parks in Birmingham ({DEMO_COMPANY}).\n"
            f"Every demo account's password: {password}\n"
            "  admin@demo.parking      platform admin  -> http://127.0.0.1:8000/admin/\n"
            "  operator@demo.parking   operator (company admin)\n"
            "  staff@demo.parking      operator staff\n"
            "  marketing@demo.parking  marketing\n"
            "  driver1@demo.parking    driver (also driver2, driver3)\n"
            "Sign in for the API:\n"
            "  curl -s -X POST http://127.0.0.1:8000/api/v1/auth/token -H 'Content-Type: application/json' \\\n"
            f'       -d \'{{"email": "driver1@demo.parking", "password": "{password}"}}\'\n'
            f"Search: http://127.0.0.1:8000/api/v1/carparks?lat={lat}&lng={lng}&radius_km=2\n"
            "API docs: http://127.0.0.1:8000/api/docs/"
        )
