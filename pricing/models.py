"""Pricing data: operator rate cards (the static base that dynamic rates will refine)."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from backend.carparks.models import CarPark


class RateCard(models.Model):
    """An operator's tariff for one car park, in the car park's currency, tax included."""

    car_park = models.OneToOneField(CarPark, on_delete=models.CASCADE, related_name="rate_card")
    hourly_rate = models.DecimalField(max_digits=8, decimal_places=2, validators=[MinValueValidator(Decimal(0))])
    daily_maximum = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Cap for each 24 hours of a stay, counted from its start; empty for none.",
    )
    minimum_charge = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal(0), validators=[MinValueValidator(Decimal(0))]
    )
    tax_rate = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.2000"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
        help_text="Sales tax included in prices, e.g. 0.2000 for 20% VAT.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(hourly_rate__gte=0), name="ratecard_hourly_rate_non_negative"),
            models.CheckConstraint(condition=Q(minimum_charge__gte=0), name="ratecard_minimum_non_negative"),
            models.CheckConstraint(condition=Q(tax_rate__gte=0, tax_rate__lte=1), name="ratecard_tax_rate_range"),
        ]

    def __str__(self) -> str:
        return f"{self.car_park}: {self.hourly_rate}/h"


class OccupancySource(models.TextChoices):
    BOOKINGS = "bookings", "Bookings"
    GATE = "gate", "Gate counts"
    IMPORT = "import", "Imported"


class OccupancyHour(models.Model):
    """How full a car park was in one local hour (mean occupied bays), by source."""

    car_park = models.ForeignKey(CarPark, on_delete=models.CASCADE, related_name="occupancy_hours")
    hour_start = models.DateTimeField(help_text="UTC instant where the local hour starts.")
    source = models.CharField(max_length=16, choices=OccupancySource.choices)
    occupied = models.DecimalField(max_digits=10, decimal_places=2)
    capacity = models.PositiveIntegerField()
    readings = models.PositiveIntegerField(default=0, help_text="Raw readings averaged into this hour.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["car_park", "hour_start"]
        constraints = [
            models.UniqueConstraint(fields=["car_park", "hour_start", "source"], name="occupancy_hour_unique"),
            models.CheckConstraint(condition=Q(occupied__gte=0), name="occupancy_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.car_park_id} {self.hour_start:%Y-%m-%d %H:%M} {self.occupied}/{self.capacity} ({self.source})"

    @property
    def rate(self) -> float:
        return float(self.occupied) / self.capacity if self.capacity else 0.0
