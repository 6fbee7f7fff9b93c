"""Car-park shapes on the wire. Validation of units and ranges lives here; rules in services."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import time, timedelta
from decimal import Decimal
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from backend.api.fields import AwareDateTimeField
from backend.carparks.hours import Period
from backend.carparks.models import BOOKING_TERM_FIELDS, MAX_CAPACITY, CarPark, Closure, OpeningPeriod, Weekday
from backend.core import clock
from backend.core.clock import iso_utc
from backend.core.money import MINOR_UNITS

WEEKDAY_NAMES = [label for _, label in Weekday.choices]
_ALL_TIMEZONES = frozenset(zoneinfo.available_timezones())
MIDNIGHT = time(0)


class LocationSerializer(serializers.Serializer):
    lat = serializers.FloatField(min_value=-90, max_value=90)
    lng = serializers.FloatField(min_value=-180, max_value=180)


class BaysSerializer(serializers.Serializer):
    standard = serializers.IntegerField(min_value=0, max_value=MAX_CAPACITY, required=False)
    accessible = serializers.IntegerField(min_value=0, max_value=MAX_CAPACITY, required=False)
    ev_charging = serializers.IntegerField(min_value=0, max_value=MAX_CAPACITY, required=False)


class FeaturesSerializer(serializers.Serializer):
    covered = serializers.BooleanField(required=False)
    height_limit_m = serializers.DecimalField(
        max_digits=4,
        decimal_places=2,
        min_value=Decimal("1.00"),
        max_value=Decimal("10.00"),
        required=False,
        allow_null=True,
    )
    ev_charging = serializers.BooleanField(read_only=True, help_text="Derived: the car park has EV charging bays.")
    accessible = serializers.BooleanField(read_only=True, help_text="Derived: the car park has accessible bays.")


class BookingTermsSerializer(serializers.Serializer):
    """What a booking at this car park is sold under. A change applies to bookings held afterwards
    (each booking keeps the cancellation rule it was quoted); the entry grace applies at the gate."""

    free_cancellation_hours = serializers.IntegerField(
        min_value=0, max_value=24 * 30, required=False, help_text="Full refund until this many hours before start."
    )
    late_cancellation_refund_percent = serializers.IntegerField(
        min_value=0, max_value=100, required=False, help_text="Share refunded when cancelling later than that."
    )
    entry_grace_minutes = serializers.IntegerField(
        min_value=0, max_value=240, required=False, help_text="How early before its start a booking may enter."
    )


@extend_schema_field(
    {"oneOf": [{"type": "string", "enum": WEEKDAY_NAMES}, {"type": "integer", "minimum": 0, "maximum": 6}]}
)
class WeekdayField(serializers.Field):
    """``"monday"`` ... ``"sunday"``, or 0 (Monday) ... 6 (Sunday)."""

    default_error_messages = {"invalid": "Use a weekday name (monday ... sunday) or 0 (Monday) to 6 (Sunday)."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and data.strip().lower() in WEEKDAY_NAMES:
            return WEEKDAY_NAMES.index(data.strip().lower())
        if isinstance(data, int) and not isinstance(data, bool) and 0 <= data <= 6:
            return data
        self.fail("invalid")
        raise AssertionError("unreachable")

    def to_representation(self, value: int) -> str:
        return WEEKDAY_NAMES[value]


@extend_schema_field({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$", "example": "07:30"})
class ClockTimeField(serializers.Field):
    """``HH:MM`` local wall-clock time; ``24:00`` means the end of the day."""

    default_error_messages = {"invalid": "Use HH:MM between 00:00 and 24:00."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        text = data.strip()
        if text == "24:00":
            return text
        try:
            parsed = time.fromisoformat(text)
        except ValueError:
            self.fail("invalid")
        if parsed.second or parsed.microsecond or len(text) != 5:
            self.fail("invalid")
        return text

    def to_representation(self, value: str) -> str:
        return value


class OpeningPeriodSerializer(serializers.Serializer):
    weekday = WeekdayField()
    opens = ClockTimeField()
    closes = ClockTimeField()
    overnight = serializers.BooleanField(default=False, help_text="Closes on the next day (e.g. 18:00-02:00).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A partial update of the car park reaches here partial too, which skips required fields and
        # defaults; a period is always given whole.
        missing = {name: "This field is required." for name in ("weekday", "opens", "closes") if name not in attrs}
        if missing:
            raise serializers.ValidationError(missing, code="required")
        attrs.setdefault("overnight", False)
        if attrs["opens"] == "24:00":
            raise serializers.ValidationError({"opens": "A period cannot open at 24:00."})
        opens = time.fromisoformat(attrs["opens"])
        if attrs["closes"] == "24:00":
            if attrs["overnight"]:
                raise serializers.ValidationError({"closes": "24:00 already ends the day; overnight must be false."})
            # Stored as an overnight period ending at 00:00 of the next day.
            return {"weekday": attrs["weekday"], "opens": opens, "closes": MIDNIGHT, "overnight": True}
        closes = time.fromisoformat(attrs["closes"])
        if attrs["overnight"] and closes > opens:
            raise serializers.ValidationError({"closes": "An overnight period closes the next day, before it opens."})
        if not attrs["overnight"] and closes <= opens:
            raise serializers.ValidationError(
                {"closes": "Closes before it opens: set overnight to true if it closes the next day."}
            )
        return {"weekday": attrs["weekday"], "opens": opens, "closes": closes, "overnight": attrs["overnight"]}


def _period_representation(period: Period | OpeningPeriod) -> dict[str, Any]:
    closes_at_midnight = period.overnight and period.closes == MIDNIGHT
    return {
        "weekday": WEEKDAY_NAMES[period.weekday],
        "opens": period.opens.strftime("%H:%M"),
        "closes": "24:00" if closes_at_midnight else period.closes.strftime("%H:%M"),
        "overnight": period.overnight and not closes_at_midnight,
    }


class CarParkCompanySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class CarParkSerializer(serializers.ModelSerializer):
    """What anyone may read.

    Rows are written by hand in ``to_representation`` (a search shows twenty at a time, and DRF
    would build every declared field again for each); the declarations stay the schema, and the
    tests check the rows against DRF's generic ``to_representation``. A list can pass
    ``opening_periods`` in the context (``selectors.opening_periods_of``) instead of prefetching
    period instances.
    """

    location = serializers.SerializerMethodField()
    bays = serializers.SerializerMethodField()
    features = serializers.SerializerMethodField()
    opening_hours = serializers.SerializerMethodField()
    operator = CarParkCompanySerializer(source="company", read_only=True)

    class Meta:
        model = CarPark
        fields = [
            "id",
            "name",
            "address",
            "location",
            "timezone",
            "currency",
            "total_capacity",
            "bays",
            "features",
            "opening_hours",
            "operator",
        ]

    def to_representation(self, instance: CarPark) -> dict[str, Any]:
        return {
            "id": instance.pk,
            "name": instance.name,
            "address": instance.address,
            "location": self.get_location(instance),
            "timezone": instance.timezone,
            "currency": instance.currency,
            "total_capacity": instance.total_capacity,
            "bays": self.get_bays(instance),
            "features": self.get_features(instance),
            "opening_hours": self.get_opening_hours(instance),
            "operator": {"id": instance.company.pk, "name": instance.company.name},
        }

    @extend_schema_field(LocationSerializer)
    def get_location(self, car_park: CarPark) -> dict[str, float]:
        return {"lat": car_park.latitude, "lng": car_park.longitude}

    @extend_schema_field(BaysSerializer)
    def get_bays(self, car_park: CarPark) -> dict[str, int]:
        return {
            "standard": car_park.standard_bays,
            "accessible": car_park.accessible_bays,
            "ev_charging": car_park.ev_charging_bays,
        }

    @extend_schema_field(FeaturesSerializer)
    def get_features(self, car_park: CarPark) -> dict[str, Any]:
        return {
            "covered": car_park.covered,
            "ev_charging": car_park.has_ev_charging,
            "accessible": car_park.has_accessible_bays,
            "height_limit_m": str(car_park.height_limit_m) if car_park.height_limit_m is not None else None,
        }

    @extend_schema_field(OpeningPeriodSerializer(many=True))
    def get_opening_hours(self, car_park: CarPark) -> list[dict[str, Any]]:
        known: Mapping[int, list[Period]] | None = self.context.get("opening_periods")
        periods = known.get(car_park.pk, []) if known is not None else car_park.opening_periods.all()
        return [_period_representation(period) for period in periods]


class CarParkSearchResultSerializer(CarParkSerializer):
    distance_m = serializers.SerializerMethodField()

    class Meta(CarParkSerializer.Meta):
        fields = [*CarParkSerializer.Meta.fields, "distance_m"]

    def to_representation(self, instance: CarPark) -> dict[str, Any]:
        return {**super().to_representation(instance), "distance_m": self.get_distance_m(instance)}

    @extend_schema_field(OpenApiTypes.INT)
    def get_distance_m(self, car_park: CarPark) -> int | None:
        distance = getattr(car_park, "distance_m", None)
        return None if distance is None else int(distance)


class CarParkPrivateSerializer(CarParkSerializer):
    """For the owning company's staff: adds private fields."""

    class Meta(CarParkSerializer.Meta):
        fields = [*CarParkSerializer.Meta.fields, "booking_terms", "internal_notes", "created_at", "updated_at"]

    booking_terms = serializers.SerializerMethodField()

    def to_representation(self, instance: CarPark) -> dict[str, Any]:
        return {
            **super().to_representation(instance),
            "booking_terms": self.get_booking_terms(instance),
            "internal_notes": instance.internal_notes,
            "created_at": iso_utc(instance.created_at),
            "updated_at": iso_utc(instance.updated_at),
        }

    @extend_schema_field(BookingTermsSerializer)
    def get_booking_terms(self, car_park: CarPark) -> dict[str, int]:
        return {name: getattr(car_park, name) for name in BOOKING_TERM_FIELDS}


class CarParkInputSerializer(serializers.Serializer):
    """Create (all required but bays/features/hours) or change (partial) a car park."""

    name = serializers.CharField(max_length=200)
    address = serializers.CharField(max_length=500)
    location = LocationSerializer()
    timezone = serializers.CharField(max_length=64, help_text="IANA time zone, e.g. Europe/London.")
    currency = serializers.CharField(max_length=3, help_text="ISO 4217 code, e.g. GBP.")
    total_capacity = serializers.IntegerField(
        min_value=1,
        max_value=MAX_CAPACITY,
        required=False,
        help_text="All bays. Standard bays are what is left after accessible and EV bays.",
    )
    bays = BaysSerializer(required=False)
    features = FeaturesSerializer(required=False)
    opening_hours = OpeningPeriodSerializer(
        many=True, required=False, help_text="One entry per open weekday; a weekday left out is closed. Default: 24/7."
    )
    booking_terms = BookingTermsSerializer(required=False)
    internal_notes = serializers.CharField(required=False, allow_blank=True, max_length=5000)

    def validate_timezone(self, value: str) -> str:
        if value not in _ALL_TIMEZONES:
            raise serializers.ValidationError(f"Unknown IANA time zone {value!r}.", code="invalid_timezone")
        return value

    def validate_location(self, value: dict[str, float]) -> dict[str, float]:
        # A partial update still moves the whole point: both coordinates or neither.
        missing = {key: "This field is required." for key in ("lat", "lng") if key not in value}
        if missing:
            raise serializers.ValidationError(missing, code="required")
        return value

    def validate_currency(self, value: str) -> str:
        code = value.upper()
        if code not in MINOR_UNITS:
            raise serializers.ValidationError(f"Unsupported currency {value!r}.", code="invalid_currency")
        return code

    def validate_opening_hours(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        weekdays = [period["weekday"] for period in value]
        if len(weekdays) != len(set(weekdays)):
            raise serializers.ValidationError("One period per weekday.", code="duplicate_weekday")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not self.partial and "total_capacity" not in attrs and "bays" not in attrs:
            raise serializers.ValidationError({"total_capacity": "Give total_capacity or bays."}, code="required")
        return attrs

    def to_service_fields(self, existing: CarPark | None) -> tuple[dict[str, Any], list[Period] | None]:
        """Split validated input into model fields and opening periods (None: unchanged)."""
        data = self.validated_data
        fields: dict[str, Any] = {
            key: data[key] for key in ("name", "address", "timezone", "currency", "internal_notes") if key in data
        }
        if "location" in data:
            fields["latitude"] = data["location"]["lat"]
            fields["longitude"] = data["location"]["lng"]
        fields.update(data.get("booking_terms", {}))
        features = data.get("features", {})
        for key in ("covered", "height_limit_m"):
            if key in features:
                fields[key] = features[key]
        if "total_capacity" in data or "bays" in data:
            fields.update(_bay_counts(data.get("total_capacity"), data.get("bays", {}), existing))
        periods = None
        if "opening_hours" in data:
            periods = [Period(**period) for period in data["opening_hours"]]
        elif existing is None:
            periods = [Period(weekday=day, opens=MIDNIGHT, closes=MIDNIGHT, overnight=True) for day in range(7)]
        return fields, periods


def _bay_counts(total: int | None, bays: dict[str, int], existing: CarPark | None) -> dict[str, int]:
    current = {
        "standard": existing.standard_bays if existing else 0,
        "accessible": existing.accessible_bays if existing else 0,
        "ev_charging": existing.ev_charging_bays if existing else 0,
    }
    accessible = bays.get("accessible", current["accessible"])
    ev_charging = bays.get("ev_charging", current["ev_charging"])
    if total is None:
        standard = bays.get("standard", current["standard"])
    elif "standard" in bays:
        standard = bays["standard"]
        if standard + accessible + ev_charging != total:
            raise serializers.ValidationError(
                {"bays": f"Bays add up to {standard + accessible + ev_charging}, not total_capacity {total}."}
            )
    else:
        standard = total - accessible - ev_charging
        if standard < 0:
            raise serializers.ValidationError(
                {"bays": f"Accessible and EV bays ({accessible + ev_charging}) exceed total_capacity {total}."}
            )
    if standard + accessible + ev_charging < 1:
        raise serializers.ValidationError({"total_capacity": "A car park needs at least one bay."}, code="min_value")
    return {"standard_bays": standard, "accessible_bays": accessible, "ev_charging_bays": ev_charging}


class ClosureSerializer(serializers.ModelSerializer):
    class Meta:
        model = Closure
        fields = ["id", "car_park", "starts_at", "ends_at", "reason", "created_at"]
        read_only_fields = ["id", "car_park", "created_at"]


CLOSURE_MAX_DAYS = 366


class ClosureInputSerializer(serializers.Serializer):
    starts_at = AwareDateTimeField()
    ends_at = AwareDateTimeField()
    reason = serializers.CharField(max_length=300)
    cancel_affected_bookings = serializers.BooleanField(
        default=False,
        help_text="Without it, a closure over live bookings is refused (409) with their list; with it, "
        "they are cancelled, refunded in full and their drivers told.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": "A closure ends after it starts."}, code="ends_before_start")
        if attrs["ends_at"] <= clock.now():
            raise serializers.ValidationError({"ends_at": "A closure must end in the future."}, code="ends_in_past")
        if attrs["ends_at"] - attrs["starts_at"] > timedelta(days=CLOSURE_MAX_DAYS):
            # Each closed slot is a ledger row per bay type; a car park that closes for good is archived.
            raise serializers.ValidationError(
                {"ends_at": f"A closure lasts at most {CLOSURE_MAX_DAYS} days; archive a car park closing for good."},
                code="closure_too_long",
            )
        return attrs
