"""Operator API for rate policy: rules, overrides, the published calendar, and why a rate is what it is.

Company staff (operators and marketing) read their own company's car parks; only operators
write (marketing gets 403). Another company's car park is 404, as everywhere else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import IsCompanyMember, IsOperator, acting_user, company_id_of
from backend.audit.models import AuditEntry
from backend.carparks.models import CarPark
from backend.core import clock
from pricing import charts, policy, rates
from pricing.api.serializers import (
    ExplainQuerySerializer,
    RateOverrideInputSerializer,
    RateOverrideSerializer,
    RateRuleInputSerializer,
    RateRuleSerializer,
    WindowSerializer,
)
from pricing.models import PublishedRate, RateCard, RateOverride, RateRule
from pricing.selectors import default_rate_card

PERCENT = Decimal(100)
CAR_PARK_PARAMETER = OpenApiParameter("car_park_id", int, OpenApiParameter.PATH)


class ReadStaffWriteOperator(BasePermission):
    """Company staff read; operators write (marketing may look but never change rates)."""

    message = "Only operator staff may change rates."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return IsCompanyMember().has_permission(request, view)
        return IsOperator().has_permission(request, view)


class CarParkRatesView(APIView):
    permission_classes = [IsAuthenticated, ReadStaffWriteOperator]

    def car_park(self) -> CarPark:
        """The requester's company's car park; 404 for anyone else's."""
        return get_object_or_404(
            CarPark.objects.live().of_company(company_id_of(self.request)), pk=self.kwargs["car_park_id"]
        )


# --- Representations -------------------------------------------------------------------------------


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def rule_representation(rule: RateRule, car_park: CarPark) -> dict[str, Any]:
    value, source = rates.elasticity_of(rule)
    estimated = None
    if rule.estimated_elasticity is not None:
        estimated = {
            "value": rule.estimated_elasticity,
            "stderr": rule.estimated_elasticity_stderr,
            "n": rule.estimated_elasticity_n,
            "at": rule.estimated_at,
        }
    return {
        "car_park_id": car_park.pk,
        "configured": rule.pk is not None,
        "is_dynamic": rule.is_dynamic,
        "currency": car_park.currency,
        "base_rate": _money(rule.base_rate),
        "minimum": _money(rule.minimum),
        "maximum": _money(rule.maximum),
        "max_daily_change": _money(rule.max_daily_change),
        "step": _money(rule.step),
        "band_low": float(rule.band_low * PERCENT),
        "band_high": float(rule.band_high * PERCENT),
        "elasticity": None if rule.elasticity is None else float(rule.elasticity),
        "mode": rule.mode,
        "elasticity_in_use": {"value": value, "source": source, "assumption": policy.ASSUMPTION_TEXT},
        "estimated_elasticity": estimated,
    }


def published_representation(row: PublishedRate, car_park: CarPark) -> dict[str, Any]:
    return {
        "hour_start": row.hour_start.astimezone(UTC),
        "local_start": row.hour_start.astimezone(car_park.zone).isoformat(),
        "rate": _money(row.rate),
        "currency": row.currency,
        "reason": row.reason,
        "published_at": row.published_at,
    }


def _rule_or_default(car_park: CarPark) -> RateRule:
    return RateRule.objects.filter(car_park=car_park).first() or rates.default_rule(car_park)


def _window(request: Request, *, back: timedelta, ahead: timedelta) -> tuple[datetime, datetime]:
    query = WindowSerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    now = clock.now()
    start = query.validated_data.get("start") or now - back
    end = query.validated_data.get("end") or start + back + ahead
    if end <= start:
        end = start + ahead
    return start, min(end, start + timedelta(days=31))


# --- Views --------------------------------------------------------------------------------------------


@extend_schema(parameters=[CAR_PARK_PARAMETER])
class RateRuleView(CarParkRatesView):
    """The car park's rate rule: bounds, target band (percent), elasticity, dynamic on/off."""

    @extend_schema(summary="The rate rule (defaults when none is set)", responses=RateRuleSerializer)
    def get(self, request: Request, car_park_id: int) -> Response:
        car_park = self.car_park()
        return Response(rule_representation(_rule_or_default(car_park), car_park))

    @extend_schema(summary="Set the rate rule", request=RateRuleInputSerializer, responses=RateRuleSerializer)
    def put(self, request: Request, car_park_id: int) -> Response:
        return self._save(request, partial=False)

    @extend_schema(summary="Change the rate rule", request=RateRuleInputSerializer, responses=RateRuleSerializer)
    def patch(self, request: Request, car_park_id: int) -> Response:
        return self._save(request, partial=True)

    def _save(self, request: Request, *, partial: bool) -> Response:
        car_park = self.car_park()
        data = RateRuleInputSerializer(
            data=request.data, partial=partial, context={"current": _rule_or_default(car_park)}
        )
        data.is_valid(raise_exception=True)
        rule = rates.rate_rule_save(actor=acting_user(request), car_park=car_park, fields=data.to_fields())
        return Response(rule_representation(rule, car_park))


@extend_schema(parameters=[CAR_PARK_PARAMETER])
class RateOverrideListView(CarParkRatesView, generics.ListAPIView):
    """Operator overrides: they always win over the policy (within minimum and maximum)."""

    serializer_class = RateOverrideSerializer

    def get_queryset(self) -> QuerySet[RateOverride]:
        if getattr(self, "swagger_fake_view", False):
            return RateOverride.objects.none()
        return (
            RateOverride.objects.filter(car_park=self.car_park(), ends_at__gt=clock.now())
            .select_related("car_park", "created_by")
            .order_by("starts_at", "pk")
        )

    @extend_schema(summary="Current and future overrides (paginated like every list)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)

    @extend_schema(
        summary="Override the rate for some hours",
        request=RateOverrideInputSerializer,
        responses={201: RateOverrideSerializer},
    )
    def post(self, request: Request, car_park_id: int) -> Response:
        car_park = self.car_park()
        data = RateOverrideInputSerializer(data=request.data, context={"car_park": car_park})
        data.is_valid(raise_exception=True)
        override = rates.rate_override_create(actor=acting_user(request), car_park=car_park, **data.validated_data)
        return Response(RateOverrideSerializer(override).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[CAR_PARK_PARAMETER, OpenApiParameter("override_id", int, OpenApiParameter.PATH)])
class RateOverrideDetailView(CarParkRatesView):
    @extend_schema(summary="Remove an override", responses={204: None})
    def delete(self, request: Request, car_park_id: int, override_id: int) -> Response:
        override = get_object_or_404(RateOverride.objects.filter(car_park=self.car_park()), pk=override_id)
        rates.rate_override_delete(actor=acting_user(request), override=override)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    parameters=[
        CAR_PARK_PARAMETER,
        OpenApiParameter("start", str, description="ISO 8601 with an offset; default now"),
        OpenApiParameter("end", str, description="ISO 8601 with an offset; default start + 7 days (at most 31)"),
    ]
)
class RateCalendarView(CarParkRatesView):
    @extend_schema(summary="Published hourly rates, each with its reason", responses=None)
    def get(self, request: Request, car_park_id: int) -> Response:
        car_park = self.car_park()
        start, end = _window(request, back=timedelta(0), ahead=timedelta(days=7))
        rows = PublishedRate.objects.filter(car_park=car_park, hour_start__gte=start, hour_start__lt=end).order_by(
            "hour_start"
        )
        return Response(
            {
                "car_park_id": car_park.pk,
                "timezone": car_park.timezone,
                "currency": car_park.currency,
                "start": start,
                "end": end,
                "assumption": policy.ASSUMPTION_TEXT,
                "rates": [published_representation(row, car_park) for row in rows],
            }
        )


@extend_schema(parameters=[CAR_PARK_PARAMETER, OpenApiParameter("at", str, description="ISO 8601 with an offset")])
class RateExplainView(CarParkRatesView):
    @extend_schema(summary="Why the rate for an hour is what it is", responses=None)
    def get(self, request: Request, car_park_id: int) -> Response:
        car_park = self.car_park()
        query = ExplainQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        at = query.validated_data.get("at") or clock.now()
        local = at.astimezone(car_park.zone)
        hour_start = (
            at - timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
        ).astimezone(UTC)
        row = PublishedRate.objects.filter(car_park=car_park, hour_start=hour_start).first()
        return Response(explain(car_park, _rule_or_default(car_park), hour_start, row))


def explain(car_park: CarPark, rule: RateRule, hour_start: datetime, row: PublishedRate | None) -> dict[str, Any]:
    """The reason behind one hour's rate, in fields and in one sentence."""
    band = {"low_percent": float(rule.band_low * PERCENT), "high_percent": float(rule.band_high * PERCENT)}
    bounds = {
        "minimum": _money(rule.minimum),
        "maximum": _money(rule.maximum),
        "max_daily_change": _money(rule.max_daily_change),
        "step": _money(rule.step),
    }
    base = {
        "car_park_id": car_park.pk,
        "hour_start": hour_start,
        "local_start": hour_start.astimezone(car_park.zone).isoformat(),
        "currency": car_park.currency,
        "target_band": band,
        "bounds": bounds,
        "assumption": policy.ASSUMPTION_TEXT,
    }
    if row is None:
        card = RateCard.objects.filter(car_park=car_park).first() or default_rate_card(car_park)
        value, source = rates.elasticity_of(rule)
        return {
            **base,
            "rate": _money(card.hourly_rate),
            "source": "rate_card" if card.pk else "platform_default",
            "policy": "not_published",
            "predicted_occupancy": None,
            "forecast_occupancy": None,
            "bound_applied": None,
            "model_version": None,
            "elasticity": {"value": value, "source": source},
            "explanation": "No rate is published for this hour, so the rate card applies.",
        }
    reason = row.reason
    return {
        **base,
        "rate": _money(row.rate),
        "source": "published",
        "published_at": row.published_at,
        "policy": reason.get("policy"),
        "predicted_occupancy": reason.get("predicted_occupancy"),
        "forecast_occupancy": reason.get("forecast_occupancy"),
        "reference_rate": reason.get("reference_rate"),
        "previous_rate": reason.get("previous_rate"),
        "bound_applied": reason.get("bound_applied"),
        "model_version": reason.get("model_version"),
        "mode": reason.get("mode"),
        "elasticity": {"value": reason.get("elasticity"), "source": reason.get("elasticity_source")},
        "explanation": _sentence(row, band),
    }


_POLICY_TEXT = {
    policy.REASON_NO_HISTORY: "There is no occupancy forecast for this hour (no history or no active model), "
    "so the base rate applies.",
    policy.REASON_OVERRIDE: "An operator override sets this hour's rate.",
    policy.REASON_WITHIN_BAND: "Predicted occupancy at this rate is inside the target band, so the rate is kept.",
    policy.REASON_RAISE: "Predicted occupancy was above the target band, so the rate goes up.",
    policy.REASON_LOWER: "Predicted occupancy was below the target band, so the rate goes down.",
    policy.REASON_REVENUE: "The rate earns the most while keeping predicted occupancy in the target band.",
    policy.REASON_NO_RESPONSE: "The price response cannot be evaluated (a free reference rate), so the rate is kept.",
    rates.REASON_DYNAMIC_OFF: "Dynamic pricing is off, so the base rate applies.",
}
_BOUND_TEXT = {
    "minimum": "The operator's minimum rate stopped it going lower.",
    "maximum": "The operator's maximum rate stopped it going higher.",
    "daily_change": "The limit on change against the same hour yesterday stopped it moving further.",
}


def _sentence(row: PublishedRate, band: dict[str, float]) -> str:
    reason = row.reason
    parts = [_POLICY_TEXT.get(str(reason.get("policy")), "")]
    forecast, predicted = reason.get("forecast_occupancy"), reason.get("predicted_occupancy")
    if forecast is not None and predicted is not None:
        parts.append(
            f"Forecast occupancy {forecast:.0%} at {reason.get('reference_rate')} "
            f"(model v{reason.get('model_version')}); "
            f"{predicted:.0%} predicted at {row.rate:.2f} {row.currency}, "
            f"target {band['low_percent']:.0f}-{band['high_percent']:.0f}%."
        )
    bound = reason.get("bound_applied")
    if bound in _BOUND_TEXT:
        parts.append(_BOUND_TEXT[bound])
    if forecast is not None:
        parts.append(f"Elasticity {reason.get('elasticity')} ({reason.get('elasticity_source')}).")
    return " ".join(part for part in parts if part)


@extend_schema(
    parameters=[
        CAR_PARK_PARAMETER,
        OpenApiParameter("start", str, description="ISO 8601 with an offset; default 7 days ago"),
        OpenApiParameter("end", str, description="ISO 8601 with an offset; default now (at most 31 days)"),
    ]
)
class RateHistoryView(CarParkRatesView):
    @extend_schema(summary="Rates that applied, and who changed the rule or overrides", responses=None)
    def get(self, request: Request, car_park_id: int) -> Response:
        car_park = self.car_park()
        start, end = _window(request, back=timedelta(days=7), ahead=timedelta(0))
        rows = PublishedRate.objects.filter(
            car_park=car_park, hour_start__gte=start, hour_start__lt=min(end, clock.now())
        ).order_by("hour_start")
        return Response(
            {
                "car_park_id": car_park.pk,
                "currency": car_park.currency,
                "start": start,
                "end": end,
                "rates": [published_representation(row, car_park) for row in rows],
                "changes": _changes(car_park, start, end),
            }
        )


def _changes(car_park: CarPark, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rule_ids = [str(pk) for pk in RateRule.objects.filter(car_park=car_park).values_list("pk", flat=True)]
    entries = AuditEntry.objects.filter(at__gte=start, at__lt=end).filter(
        Q(object_type="pricing.raterule", object_id__in=rule_ids)
        | Q(object_type="pricing.rateoverride", after__car_park_id=car_park.pk)
        | Q(object_type="pricing.rateoverride", before__car_park_id=car_park.pk)
    )
    return [
        {
            "at": entry.at,
            "actor": entry.actor_email,
            "action": entry.action,
            "before": entry.before,
            "after": entry.after,
        }
        for entry in entries.order_by("at", "id")
    ]


FORECAST_PARAMETERS = [
    CAR_PARK_PARAMETER,
    OpenApiParameter("start", str, description="ISO 8601 with an offset; default 7 days ago"),
    OpenApiParameter("end", str, description="ISO 8601 with an offset; default start + 14 days (at most 31)"),
]


@extend_schema(parameters=FORECAST_PARAMETERS)
class ForecastView(CarParkRatesView):
    @extend_schema(summary="Forecast against actual occupancy, per hour", responses=None)
    def get(self, request: Request, car_park_id: int) -> Response:
        car_park = self.car_park()
        start, end = _window(request, back=timedelta(days=7), ahead=timedelta(days=7))
        return Response(
            {"car_park_id": car_park.pk, "start": start, "end": end, "hours": forecast_rows(car_park, start, end)}
        )


@extend_schema(parameters=FORECAST_PARAMETERS)
class ForecastChartView(CarParkRatesView):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The chart is an HttpResponse of its own; only a refusal goes through a renderer, and it is
        # problem JSON whatever the Accept header (Accept: image/png must not be a 406).
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        summary="The forecast as a chart (PNG): forecast and actual occupancy above the hourly rate",
        responses={(200, "image/png"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, car_park_id: int) -> HttpResponse:
        car_park = self.car_park()
        start, end = _window(request, back=timedelta(days=7), ahead=timedelta(days=7))
        rule = _rule_or_default(car_park)
        rows = forecast_rows(car_park, start, end)
        png = charts.forecast_png(car_park, rows, start, end, band=(rule.band_low, rule.band_high))
        return HttpResponse(png, content_type="image/png")


def forecast_rows(car_park: CarPark, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Each hour of ``[start, end)`` with a published rate or an observed occupancy, in order."""
    published = {
        row.hour_start.astimezone(UTC): row
        for row in PublishedRate.objects.filter(car_park=car_park, hour_start__gte=start, hour_start__lt=end)
    }
    actual = {moment.astimezone(UTC): value for moment, value in rates.actual_occupancy(car_park, start, end).items()}
    hours = sorted(set(published) | set(actual))
    return [_forecast_row(moment, published.get(moment), actual.get(moment), car_park) for moment in hours]


def _forecast_row(
    moment: datetime, row: PublishedRate | None, actual: float | None, car_park: CarPark
) -> dict[str, Any]:
    return {
        "hour_start": moment,
        "local_start": moment.astimezone(car_park.zone).isoformat(),
        "forecast_occupancy": None if row is None else row.forecast_occupancy,
        "predicted_occupancy_at_rate": None if row is None else row.predicted_occupancy,
        "actual_occupancy": None if actual is None else round(actual, 4),
        "rate": None if row is None else _money(row.rate),
        "model_version": None if row is None else row.reason.get("model_version"),
    }
