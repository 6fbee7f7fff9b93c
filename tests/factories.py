"""factory-boy factories for the models tests build most."""

from __future__ import annotations

from datetime import time
from typing import Any

import factory

from backend.accounts.models import Company, Role, User, Vehicle
from backend.carparks.models import CarPark, OpeningPeriod

PASSWORD = "correct-horse-battery-staple"


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Company {n}")
    country = "GB"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    first_name = "Test"
    last_name = "User"
    role = Role.DRIVER

    @factory.post_generation
    def password(self, create: bool, extracted: str | None, **kwargs: Any) -> None:
        self.set_password(extracted or PASSWORD)
        if create:
            self.save()


class VehicleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vehicle

    owner = factory.SubFactory(UserFactory)
    plate = factory.Sequence(lambda n: f"AB{n:02d}CDE")


class CarParkFactory(factory.django.DjangoModelFactory):
    """A 24/7 car park in central Birmingham with 100 bays (90 standard, 5 accessible, 5 EV)."""

    class Meta:
        model = CarPark
        skip_postgeneration_save = True

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Car park {n}")
    address = "1 Test Street, Birmingham"
    latitude = 52.4797
    longitude = -1.9026
    timezone = "Europe/London"
    currency = "GBP"
    standard_bays = 90
    accessible_bays = 5
    ev_charging_bays = 5

    @factory.post_generation
    def hours(self, create: bool, extracted: list[tuple[int, time, time, bool]] | None, **kwargs: Any) -> None:
        """Opening periods; default 24/7 (``00:00``-``00:00`` overnight on every weekday)."""
        if not create:
            return
        periods = extracted if extracted is not None else [(day, time(0), time(0), True) for day in range(7)]
        OpeningPeriod.objects.bulk_create(
            OpeningPeriod(car_park=self, weekday=d, opens=o, closes=c, overnight=n) for d, o, c, n in periods
        )
