"""Car-park inventory: where a car park is, when it is open, how many bays of each type."""

from __future__ import annotations

import zoneinfo
from datetime import time

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from backend.accounts.models import Company
from backend.core.money import CURRENCY_CHOICES


class BayType(models.TextChoices):
    STANDARD = "standard", "Standard"
    ACCESSIBLE = "accessible", "Accessible"
    EV_CHARGING = "ev_charging", "EV charging"


BAY_COUNT_FIELDS: dict[str, str] = {
    BayType.STANDARD: "standard_bays",
    BayType.ACCESSIBLE: "accessible_bays",
    BayType.EV_CHARGING: "ev_charging_bays",
}

MAX_CAPACITY = 100_000
# The terms a booking is sold under, which operators set (cancellation rule, entry grace).
BOOKING_TERM_FIELDS = ("free_cancellation_hours", "late_cancellation_refund_percent", "entry_grace_minutes")


class Weekday(models.IntegerChoices):
    MONDAY = 0, "monday"
    TUESDAY = 1, "tuesday"
    WEDNESDAY = 2, "wednesday"
    THURSDAY = 3, "thursday"
    FRIDAY = 4, "friday"
    SATURDAY = 5, "saturday"
    SUNDAY = 6, "sunday"


class CarParkQuerySet(models.QuerySet["CarPark"]):
    def live(self) -> CarParkQuerySet:
        return self.filter(archived_at__isnull=True)

    def of_company(self, company_id: int | None) -> CarParkQuerySet:
        """The company's car parks; none at all for someone without a company."""
        return self.none() if company_id is None else self.filter(company_id=company_id)


class CarPark(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="car_parks")
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=500)
    latitude = models.FloatField(validators=[MinValueValidator(-90), MaxValueValidator(90)])
    longitude = models.FloatField(validators=[MinValueValidator(-180), MaxValueValidator(180)])
    timezone = models.CharField(max_length=64, help_text="IANA zone, e.g. Europe/London: opening and pricing hours.")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    standard_bays = models.PositiveIntegerField(default=0)
    accessible_bays = models.PositiveIntegerField(default=0)
    ev_charging_bays = models.PositiveIntegerField(default=0)
    total_capacity = models.GeneratedField(
        expression=F("standard_bays") + F("accessible_bays") + F("ev_charging_bays"),
        output_field=models.PositiveIntegerField(),
        db_persist=True,
    )
    covered = models.BooleanField(default=False)
    height_limit_m = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="Vehicle height limit in metres; empty for none.",
    )
    free_cancellation_hours = models.PositiveSmallIntegerField(
        default=24, validators=[MaxValueValidator(24 * 30)], help_text="Full refund until this many hours before start."
    )
    late_cancellation_refund_percent = models.PositiveSmallIntegerField(
        default=50, validators=[MaxValueValidator(100)], help_text="Share refunded when cancelling later than that."
    )
    entry_grace_minutes = models.PositiveSmallIntegerField(
        default=15, validators=[MaxValueValidator(240)], help_text="How early before its start a booking may enter."
    )
    internal_notes = models.TextField(blank=True, help_text="Private to the operator's staff.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    objects = CarParkQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["latitude", "longitude"], name="carpark_lat_lng")]
        constraints = [
            models.CheckConstraint(
                condition=Q(standard_bays__gt=0) | Q(accessible_bays__gt=0) | Q(ev_charging_bays__gt=0),
                name="carpark_capacity_positive",
            ),
            models.CheckConstraint(condition=Q(latitude__gte=-90, latitude__lte=90), name="carpark_latitude_range"),
            models.CheckConstraint(
                condition=Q(longitude__gte=-180, longitude__lte=180), name="carpark_longitude_range"
            ),
            models.CheckConstraint(
                condition=Q(late_cancellation_refund_percent__lte=100), name="carpark_refund_percent_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def bays_of(self, bay_type: str) -> int:
        return int(getattr(self, BAY_COUNT_FIELDS[bay_type]))

    @property
    def has_ev_charging(self) -> bool:
        return self.ev_charging_bays > 0

    @property
    def has_accessible_bays(self) -> bool:
        return self.accessible_bays > 0


class OpeningPeriod(models.Model):
    """When a car park opens on one weekday (local time).

    ``overnight`` periods close on the next day; ``00:00``-``00:00`` overnight is a 24-hour day.
    A weekday without a period is closed.
    """

    car_park = models.ForeignKey(CarPark, on_delete=models.CASCADE, related_name="opening_periods")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField()
    overnight = models.BooleanField(default=False)

    class Meta:
        ordering = ["weekday"]
        constraints = [
            models.UniqueConstraint(fields=["car_park", "weekday"], name="opening_one_period_per_weekday"),
            models.CheckConstraint(
                condition=Q(overnight=True, closes__lte=F("opens")) | Q(overnight=False, closes__gt=F("opens")),
                name="opening_close_after_open_unless_overnight",
            ),
        ]

    def __str__(self) -> str:
        return f"{Weekday(self.weekday).label} {self.opens:%H:%M}-{self.closes:%H:%M}"

    @property
    def is_all_day(self) -> bool:
        return self.overnight and self.opens == time(0) and self.closes == time(0)


class Closure(models.Model):
    """A period when the car park is shut (works, events); no booking may overlap it."""

    car_park = models.ForeignKey(CarPark, on_delete=models.CASCADE, related_name="closures")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="closure_ends_after_start")]

    def __str__(self) -> str:
        return f"{self.car_park}: {self.starts_at:%Y-%m-%d %H:%M} - {self.ends_at:%Y-%m-%d %H:%M}"
