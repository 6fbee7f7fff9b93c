"""Rate-policy shapes on the wire: money as 2-decimal strings with a currency, the band in percent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from backend.api.fields import AwareDateTimeField
from backend.carparks.models import CarPark
from pricing.models import RateMode, RateOverride, RateRule

PERCENT = Decimal(100)
MAX_RANGE = timedelta(days=31)


def _money(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=8, decimal_places=2, min_value=Decimal(0), **kwargs)


def _percent(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal(0), max_value=PERCENT, required=False, help_text=help_text
    )


class RateRuleInputSerializer(serializers.Serializer):
    """Create (PUT: base_rate, minimum and maximum required) or change (PATCH) a rate rule."""

    is_dynamic = serializers.BooleanField(required=False, help_text="Dynamic pricing on or off.")
    base_rate = _money(help_text="Hourly rate without a forecast (new car park, dynamic off).")
    minimum = _money(help_text="Lowest hourly rate dynamic pricing may publish.")
    maximum = _money(help_text="Highest hourly rate dynamic pricing may publish.")
    max_daily_change = _money(
        required=False,
        allow_null=True,
        help_text="Largest change against the same local hour of the previous day; null for no limit.",
    )
    step = serializers.DecimalField(
        max_digits=8, decimal_places=2, min_value=Decimal("0.01"), required=False, help_text="Price step, e.g. 0.10."
    )
    band_low = _percent("Bottom of the target occupancy band, percent of capacity 0-100 (default 70).")
    band_high = _percent("Top of the target occupancy band, percent of capacity 0-100 (default 85).")
    elasticity = serializers.DecimalField(
        max_digits=5,
        decimal_places=3,
        max_value=Decimal("-0.001"),
        min_value=Decimal("-5"),
        required=False,
        allow_null=True,
        help_text="Operator's price elasticity of occupancy (negative), used when history cannot estimate one; "
        "null for the default of -0.4 reported by parking studies.",
    )
    mode = serializers.ChoiceField(choices=RateMode.choices, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Check the rule as it will be after the change (a PATCH is merged with the current rule)."""
        current: RateRule = self.context["current"]
        merged = {name: attrs.get(name, getattr(current, name)) for name in ("base_rate", "minimum", "maximum")}
        low = attrs.get("band_low", current.band_low * PERCENT)
        high = attrs.get("band_high", current.band_high * PERCENT)
        errors: dict[str, str] = {}
        if merged["minimum"] > merged["maximum"]:
            errors["minimum"] = f"Minimum {merged['minimum']} is above maximum {merged['maximum']}."
        elif not merged["minimum"] <= merged["base_rate"] <= merged["maximum"]:
            errors["base_rate"] = "The base rate must lie within minimum and maximum."
        if low >= high:
            errors["band_low"] = f"The band is inverted: low {low}% is not below high {high}%."
        if errors:
            raise serializers.ValidationError(errors, code="invalid")
        return attrs

    def to_fields(self) -> dict[str, Any]:
        """Validated input as model fields (the band as fractions)."""
        fields = dict(self.validated_data)
        for name in ("band_low", "band_high"):
            if name in fields:
                fields[name] = (fields[name] / PERCENT).quantize(Decimal("0.001"))
        return fields


class RateRuleSerializer(serializers.Serializer):
    car_park_id = serializers.IntegerField()
    configured = serializers.BooleanField(help_text="False: no rule yet; these are the defaults it would start from.")
    is_dynamic = serializers.BooleanField()
    currency = serializers.CharField()
    base_rate = serializers.CharField()
    minimum = serializers.CharField()
    maximum = serializers.CharField()
    max_daily_change = serializers.CharField(allow_null=True)
    step = serializers.CharField()
    band_low = serializers.FloatField(help_text="Percent of capacity.")
    band_high = serializers.FloatField(help_text="Percent of capacity.")
    elasticity = serializers.FloatField(allow_null=True, help_text="The operator's value (null: none set).")
    mode = serializers.CharField()
    elasticity_in_use = serializers.DictField(help_text="{value, source: estimated|operator|default, assumption}")
    estimated_elasticity = serializers.DictField(allow_null=True, help_text="{value, stderr, n, at} or null.")


class RateOverrideInputSerializer(serializers.Serializer):
    """Either ``starts_at`` + ``ends_at`` (with offsets) or a local ``date`` + ``from_hour`` / ``to_hour``."""

    starts_at = AwareDateTimeField(required=False)
    ends_at = AwareDateTimeField(required=False)
    date = serializers.DateField(required=False, help_text="Local date in the car park's time zone.")
    from_hour = serializers.IntegerField(min_value=0, max_value=23, required=False, help_text="Local hour, 0-23.")
    to_hour = serializers.IntegerField(
        min_value=1, max_value=24, required=False, help_text="Local hour the override ends, 1-24 (24: midnight)."
    )
    rate = _money(help_text="Hourly rate; must lie within the rule's minimum and maximum.")
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        car_park: CarPark = self.context["car_park"]
        if "date" in attrs:
            starts_at, ends_at = self._local_span(attrs, car_park)
        elif "starts_at" in attrs and "ends_at" in attrs:
            starts_at, ends_at = attrs["starts_at"].astimezone(UTC), attrs["ends_at"].astimezone(UTC)
        else:
            raise serializers.ValidationError(
                {"starts_at": "Give starts_at and ends_at, or date with from_hour and to_hour."}, code="required"
            )
        if ends_at <= starts_at:
            raise serializers.ValidationError(
                {"ends_at": "An override ends after it starts."}, code="ends_before_start"
            )
        for name, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
            local = moment.astimezone(car_park.zone)
            if local.minute or local.second or local.microsecond:
                raise serializers.ValidationError(
                    {name: "Overrides start and end on a local hour (rates are hourly)."}, code="not_on_hour"
                )
        return {"starts_at": starts_at, "ends_at": ends_at, "rate": attrs["rate"], "reason": attrs.get("reason", "")}

    @staticmethod
    def _local_span(attrs: dict[str, Any], car_park: CarPark) -> tuple[datetime, datetime]:
        day: date = attrs["date"]
        from_hour, to_hour = attrs.get("from_hour", 0), attrs.get("to_hour", 24)
        if to_hour <= from_hour:
            raise serializers.ValidationError({"to_hour": "to_hour must be after from_hour."}, code="invalid")
        zone = car_park.zone
        start = datetime(day.year, day.month, day.day, from_hour, tzinfo=zone)
        end_day = day + timedelta(days=1) if to_hour == 24 else day
        end = datetime(end_day.year, end_day.month, end_day.day, to_hour % 24, tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)


class RateOverrideSerializer(serializers.ModelSerializer):
    rate = serializers.DecimalField(max_digits=8, decimal_places=2, coerce_to_string=True)
    currency = serializers.CharField(source="car_park.currency")
    created_by = serializers.EmailField(source="created_by.email", default=None)

    class Meta:
        model = RateOverride
        fields = ["id", "car_park_id", "starts_at", "ends_at", "rate", "currency", "reason", "created_by", "created_at"]


class WindowSerializer(serializers.Serializer):
    """``start`` and ``end`` query parameters, ISO 8601 with an offset; at most 31 days apart."""

    start = AwareDateTimeField(required=False)
    end = AwareDateTimeField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None:
            if end <= start:
                raise serializers.ValidationError({"end": "end must be after start."}, code="ends_before_start")
            if end - start > MAX_RANGE:
                raise serializers.ValidationError({"end": "At most 31 days at a time."}, code="range_too_long")
        return attrs


class ExplainQuerySerializer(serializers.Serializer):
    at = AwareDateTimeField(required=False, help_text="Any instant in the hour to explain; default now.")
