"""Pricing data: operator rate cards (the static base that dynamic rates will refine)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

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


class ExternalCarPark(models.Model):
    """Maps a car-park code used by an outside data source (e.g. a CSV export) to our car park.

    Imported occupancy is stored against our car park; this mapping is what makes a re-import of
    the same file land on the same rows, and lets forecasts be reported under the source's codes.
    """

    source_name = models.CharField(max_length=100, help_text="Name of the data source, e.g. the CSV file's stem.")
    code = models.CharField(max_length=200, help_text="The car park's identifier in that source.")
    car_park = models.ForeignKey(CarPark, on_delete=models.CASCADE, related_name="external_codes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["source_name", "code"]
        constraints = [
            models.UniqueConstraint(fields=["source_name", "code"], name="external_carpark_unique_code"),
        ]

    def __str__(self) -> str:
        return f"{self.source_name}:{self.code} -> {self.car_park_id}"


class DemandModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate (training or under evaluation)"
    PROMOTED = "promoted", "Promoted (beat the baseline)"
    REJECTED = "rejected", "Rejected (did not beat the baseline)"
    FAILED = "failed", "Failed (training raised an error)"


class DemandModelVersion(models.Model):
    """One training run of the occupancy (demand) model and its outcome.

    A run starts as ``candidate``; it is ``promoted`` (and made the one active model) only when its
    hold-out MAE beats the seasonal-naive baseline, otherwise ``rejected``; an exception makes it
    ``failed`` with the error kept. At most one row is active; a promoted row stays ``promoted``
    (with ``is_active`` false) after a newer one replaces it, so the history shows what served when.
    """

    version = models.PositiveIntegerField(unique=True)
    label = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=DemandModelStatus.choices, default=DemandModelStatus.CANDIDATE)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True, help_text="Training inputs: seed, hold-out weeks, zone, ...")
    features = models.JSONField(default=list, blank=True, help_text="Feature names, in model column order.")
    train_start = models.DateTimeField(null=True, blank=True, help_text="UTC start of the first training hour.")
    train_end = models.DateTimeField(null=True, blank=True, help_text="UTC end of the last training hour.")
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Hold-out scores: mae, baseline_mae, ratio, hours_scored, per car park."
    )
    artefact_path = models.CharField(max_length=500, blank=True, help_text="joblib file under VAR_DIR/models/.")
    artefact_sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    is_active = models.BooleanField(default=False)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="demand_model_one_active"),
            models.CheckConstraint(
                condition=Q(is_active=False) | Q(status="promoted", promoted_at__isnull=False),
                name="demand_model_active_is_promoted",
            ),
        ]

    def __str__(self) -> str:
        return f"demand model v{self.version} ({self.status})"

    @property
    def ratio(self) -> float | None:
        """Model MAE / baseline MAE on the hold-out weeks (None until scored)."""
        value = self.metrics.get("ratio") if isinstance(self.metrics, dict) else None
        return None if value is None else float(value)


# --- Rate policy: operator rules, overrides, published hourly rates ---------------------------


class RateMode(models.TextChoices):
    BAND = "band", "Bring occupancy into the target band"
    REVENUE = "revenue", "Maximise revenue within the target band"


class RateRule(models.Model):
    """How dynamic pricing may move a car park's hourly rate (one per car park).

    Money in the car park's currency; the band as fractions of capacity (the API speaks
    percentages). ``elasticity`` is the operator's value, used when history cannot estimate one;
    ``estimated_*`` is filled by the estimator. Without either, ``PRICING_DEFAULT_ELASTICITY``.
    """

    car_park = models.OneToOneField(CarPark, on_delete=models.CASCADE, related_name="rate_rule")
    is_dynamic = models.BooleanField(default=True, help_text="Off: every hour at the base rate (overrides still win).")
    base_rate = models.DecimalField(max_digits=8, decimal_places=2, help_text="Rate without a forecast.")
    minimum = models.DecimalField(max_digits=8, decimal_places=2)
    maximum = models.DecimalField(max_digits=8, decimal_places=2)
    max_daily_change = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Largest change against the same local hour of the previous day; empty for none.",
    )
    step = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("0.10"))
    band_low = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.700"))
    band_high = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.850"))
    elasticity = models.DecimalField(max_digits=5, decimal_places=3, null=True, blank=True)
    mode = models.CharField(max_length=16, choices=RateMode.choices, default=RateMode.BAND)
    estimated_elasticity = models.FloatField(null=True, blank=True)
    estimated_elasticity_stderr = models.FloatField(null=True, blank=True)
    estimated_elasticity_n = models.PositiveIntegerField(null=True, blank=True)
    estimated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(minimum__gte=0), name="raterule_minimum_non_negative"),
            models.CheckConstraint(condition=Q(minimum__lte=F("maximum")), name="raterule_minimum_le_maximum"),
            models.CheckConstraint(
                condition=Q(base_rate__gte=F("minimum"), base_rate__lte=F("maximum")),
                name="raterule_base_within_bounds",
            ),
            models.CheckConstraint(condition=Q(step__gt=0), name="raterule_step_positive"),
            models.CheckConstraint(
                condition=Q(max_daily_change__isnull=True) | Q(max_daily_change__gte=0),
                name="raterule_daily_change_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(band_low__gte=0, band_high__lte=1, band_low__lt=F("band_high")),
                name="raterule_band_range",
            ),
            models.CheckConstraint(
                condition=Q(elasticity__isnull=True) | Q(elasticity__lt=0), name="raterule_elasticity_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.car_park_id}: {self.minimum}-{self.maximum} ({'dynamic' if self.is_dynamic else 'static'})"


class RateOverride(models.Model):
    """An operator's fixed rate for ``[starts_at, ends_at)`` (UTC): it always wins."""

    car_park = models.ForeignKey(CarPark, on_delete=models.CASCADE, related_name="rate_overrides")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    rate = models.DecimalField(max_digits=8, decimal_places=2)
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["car_park", "starts_at"]
        indexes = [models.Index(fields=["car_park", "ends_at"], name="rateoverride_carpark_end")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="rateoverride_ends_after_start"),
            models.CheckConstraint(condition=Q(rate__gte=0), name="rateoverride_rate_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.car_park_id} {self.starts_at:%Y-%m-%d %H:%M}-{self.ends_at:%H:%M}: {self.rate}"


class PublishedRate(models.Model):
    """The current rate for one local hour of a car park, with the reason it was chosen.

    One row per car park and hour: republishing replaces future hours in place, past hours keep
    the rate that applied (the rate history). ``reason`` holds predicted occupancy, model
    version, bound applied, elasticity and its source, mode and band.
    """

    car_park = models.ForeignKey(CarPark, on_delete=models.CASCADE, related_name="published_rates")
    hour_start = models.DateTimeField(help_text="UTC instant where the local hour starts.")
    rate = models.DecimalField(max_digits=8, decimal_places=2)
    currency = models.CharField(max_length=3)
    forecast_occupancy = models.FloatField(null=True, blank=True, help_text="Forecast at the reference rate.")
    predicted_occupancy = models.FloatField(null=True, blank=True, help_text="Forecast at the published rate.")
    reason = models.JSONField(default=dict)
    published_at = models.DateTimeField()

    class Meta:
        ordering = ["car_park", "hour_start"]
        constraints = [
            models.UniqueConstraint(fields=["car_park", "hour_start"], name="published_rate_unique_hour"),
            models.CheckConstraint(condition=Q(rate__gte=0), name="published_rate_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.car_park_id} {self.hour_start:%Y-%m-%d %H:%M}: {self.rate} {self.currency}"


class OccupancyImport(models.Model):
    """One run of ``import_occupancy``: which file, how it was cleaned, what was written.

    The data-quality report is kept so that an evaluation on imported history can state how the
    data was handled (clipping, duplicates, gaps) without the original file.
    """

    source_name = models.CharField(max_length=100)
    file_name = models.CharField(max_length=500)
    file_sha256 = models.CharField(max_length=64)
    timezone = models.CharField(max_length=64, help_text="IANA zone the file's wall-clock times were read in.")
    over_capacity = models.CharField(max_length=8, help_text="clip or drop")
    report = models.JSONField(default=dict, help_text="The reader's data-quality report (to_dict()).")
    car_parks_created = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0, help_text="Hourly occupancy rows inserted or updated.")
    skipped_codes = models.JSONField(default=list, blank=True, help_text="Codes without a car park, not imported.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.source_name} ({self.file_name}) at {self.created_at:%Y-%m-%d %H:%M}"
