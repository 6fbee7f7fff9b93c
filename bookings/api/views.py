"""Bookings API: search with availability and price, quotes, holds, payment, extension, cancellation."""

from __future__ import annotations

from typing import Any

import django_filters
from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import IsDriver, acting_user
from backend.api.errors import DomainError, problem_response
from backend.api.filters import AwareIsoDateTimeFilter, IdFilter
from backend.carparks.models import CarPark
from backend.core import clock
from bookings import ledger, services, webhooks
from bookings.api.serializers import (
    BookingCreateSerializer,
    BookingSerializer,
    ExtendSerializer,
    OfflineConfirmSerializer,
    OptionalWindowQuerySerializer,
    WindowQuerySerializer,
    quote_data,
)
from bookings.idempotency import run_idempotently
from bookings.models import Booking, BookingExtension, BookingStatus, Payment
from bookings.payments.gateway import get_provider, is_offline
from bookings.payments.providers import PaymentConfigurationError, PaymentDeclined, PaymentProviderError
from bookings.payments.webhooks import InvalidWebhook, parse_stripe_event
from pricing.selectors import quote_for_window, quotes_for_window

WINDOW_PARAMETERS = [
    OpenApiParameter("start", str, description="ISO 8601 with an offset, e.g. 2026-12-01T08:00:00Z"),
    OpenApiParameter("end", str, description="ISO 8601 with an offset"),
    OpenApiParameter("bay_type", str, enum=["standard", "accessible", "ev_charging"], required=False),
]


def _window(request: Request, serializer_class: type[WindowQuerySerializer] = WindowQuerySerializer) -> dict[str, Any]:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


def search_results_add_availability_and_price(
    request: Request, rows: list[dict[str, Any]], car_parks: list[CarPark]
) -> None:
    """Registered with the car-park search (``backend.carparks.api.views.search_enrichers``):
    with ``start``/``end``, each result gets its free bays and price for that window."""
    window = _window(request, OptionalWindowQuerySerializer)
    if "start" in window:
        _add_availability_and_price(rows, car_parks, window)


def _live_car_park(car_park_id: int) -> CarPark:
    return get_object_or_404(CarPark.objects.live(), pk=car_park_id)


class CarParkAvailabilityView(APIView):
    permission_classes: list[type] = []

    @extend_schema(
        parameters=WINDOW_PARAMETERS,
        summary="Free bays for the whole of a window",
        responses=inline_serializer(
            "Availability",
            {
                "car_park": serializers.IntegerField(),
                "start": serializers.DateTimeField(),
                "end": serializers.DateTimeField(),
                "bay_type": serializers.CharField(),
                "capacity": serializers.IntegerField(),
                "available": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request, car_park_id: int) -> Response:
        car_park = _live_car_park(car_park_id)
        window = _window(request)
        services.holds_expire(car_park_id=car_park.pk)
        free = ledger.availability(car_park, window["bay_type"], window["start"], window["end"])
        return Response(
            {
                "car_park": car_park.pk,
                "start": window["start"],
                "end": window["end"],
                "bay_type": window["bay_type"],
                "capacity": free.capacity,
                "available": free.available,
            }
        )


class CarParkQuoteView(APIView):
    permission_classes: list[type] = []

    @extend_schema(
        parameters=WINDOW_PARAMETERS[:2],
        summary="The price of a stay, computed by the server",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, car_park_id: int) -> Response:
        car_park = _live_car_park(car_park_id)
        window = _window(request)
        services.validate_window(car_park, window["start"], window["end"], now=clock.now())
        return Response(quote_data(quote_for_window(car_park, window["start"], window["end"])))


def _add_availability_and_price(rows: list[dict[str, Any]], car_parks: list[CarPark], window: dict[str, Any]) -> None:
    """A few queries for the whole page (due holds, slots, rates), never one per car park."""
    start, end, bay_type = window["start"], window["end"], window["bay_type"]
    services.holds_expire(car_park_ids=[car_park.pk for car_park in car_parks])
    free = ledger.availability_bulk(car_parks, bay_type, start, end)
    quotes = quotes_for_window(car_parks, start, end)
    for row in rows:
        availability, quote = free[row["id"]], quotes[row["id"]]
        row["availability"] = {
            "bay_type": bay_type,
            "capacity": availability.capacity,
            "available": availability.available,
        }
        row["quote"] = {"amount_minor": quote.amount_minor, "currency": quote.currency}


class BookingFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=BookingStatus.choices)
    car_park = IdFilter(field_name="car_park_id")
    starts_after = AwareIsoDateTimeFilter(field_name="start", lookup_expr="gte")
    starts_before = AwareIsoDateTimeFilter(field_name="start", lookup_expr="lt")

    class Meta:
        model = Booking
        fields: list[str] = []


class BookingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A driver's own bookings; operator staff read those at their company's car parks."""

    serializer_class = BookingSerializer
    filterset_class = BookingFilter
    lookup_value_regex = "[0-9]+"
    permission_classes = [IsAuthenticated]

    def get_permissions(self) -> list[Any]:
        if self.action in ("create", "extend", "cancel"):
            return [IsAuthenticated(), IsDriver()]
        return [IsAuthenticated()]

    def get_queryset(self) -> QuerySet[Booking]:
        if getattr(self, "swagger_fake_view", False):
            return Booking.objects.none()
        visible = services.bookings_visible_to(acting_user(self.request))
        return Booking.objects.filter(visible).prefetch_related(
            Prefetch("payments", queryset=Payment.objects.order_by("created_at")),
            Prefetch(
                "extensions",
                queryset=BookingExtension.objects.prefetch_related("payments").order_by("created_at"),
            ),
        )

    def _fresh(self, booking_id: int) -> dict[str, Any]:
        return BookingSerializer(self.get_queryset().get(pk=booking_id), context={"request": self.request}).data

    @extend_schema(
        request=BookingCreateSerializer,
        responses={201: BookingSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        summary="Hold a bay for a window at the quoted price and open its payment",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        return run_idempotently(request, lambda: self._hold(request), self.get_exception_handler_context())

    def _hold(self, request: Request) -> Response:
        data = BookingCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        booking = services.booking_hold(
            driver=acting_user(request),
            car_park_id=values["car_park"],
            vehicle_id=values["vehicle"],
            start=values["start"],
            end=values["end"],
            bay_type=values["bay_type"],
        )
        return Response(
            BookingSerializer(booking, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/bookings/{booking.pk}"},
        )

    @extend_schema(request=ExtendSerializer, responses=BookingSerializer, summary="End later (pay the difference)")
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, pk: str) -> Response:
        booking = self._own_booking(pk)
        data = ExtendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.booking_extend(booking_id=booking.pk, new_end=data.validated_data["end"])
        return Response(self._fresh(booking.pk))

    @extend_schema(request=None, responses=BookingSerializer, summary="Cancel (refund per the car park's policy)")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        booking = self._own_booking(pk)
        services.booking_cancel(booking_id=booking.pk)
        return Response(self._fresh(booking.pk))

    def _own_booking(self, pk: str) -> Booking:
        return get_object_or_404(Booking.objects.filter(driver=acting_user(self.request)), pk=pk)


class OfflinePaymentConfirmView(APIView):
    """Stands in for the mobile client's card confirmation while the offline provider is active."""

    permission_classes = [IsAuthenticated, IsDriver]

    @extend_schema(
        request=OfflineConfirmSerializer,
        responses=inline_serializer("OfflineConfirmResult", {"payment": serializers.DictField()}),
        summary="Confirm an offline payment with a test card (embedded default only)",
    )
    def post(self, request: Request, payment_id: str) -> Response:
        if not is_offline():
            return problem_response(404, code="not_found", detail="Offline payments are not active here.")
        payment = get_object_or_404(
            Payment.objects.select_related("booking"), pk=payment_id, booking__driver=acting_user(request)
        )
        data = OfflineConfirmSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _confirm_offline(payment, data.validated_data["payment_method"])


def _confirm_offline(payment: Payment, payment_method: str) -> Response:
    provider = get_provider()
    try:
        provider.confirm(payment.provider_payment_id or "", payment_method)  # type: ignore[attr-defined]
    except PaymentDeclined as exc:
        payment = services.payment_failed(payment=payment, failure_code=exc.decline_code or exc.code or "declined")
        raise PaymentRefused(
            "The card was declined; the hold stays until it expires, so you can try another card.",
            extra={"payment": {"id": str(payment.pk), "status": payment.status}},
        ) from None
    except PaymentProviderError as exc:
        raise DomainError(str(exc), code="payment_not_confirmable") from None
    payment = services.payment_succeeded(payment=payment)
    booking = Booking.objects.get(pk=payment.booking_id)
    return Response(
        {
            "payment": {"id": str(payment.pk), "status": payment.status},
            "booking": {"id": booking.pk, "status": booking.status, "code": booking.code},
        }
    )


class PaymentRefused(DomainError):
    status = 402
    code = "card_declined"
    title = "Payment declined"


class StripeWebhookView(APIView):
    """Stripe's events: signature checked over the raw body, stored by id, applied once."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    throttle_classes: list[type] = []

    @extend_schema(request=None, responses={200: None}, summary="Stripe webhook (signed by Stripe)")
    def post(self, request: Request) -> Response:
        try:
            event = parse_stripe_event(
                request.body, request.headers.get("Stripe-Signature"), settings.STRIPE_WEBHOOK_SECRET
            )
        except InvalidWebhook as exc:
            return problem_response(400, code="invalid_signature", detail=str(exc))
        except PaymentConfigurationError:
            return problem_response(503, code="webhook_not_configured", detail="Stripe webhooks are not set up here.")
        stored = webhooks.stripe_event_receive(event.to_dict())
        return Response({"id": stored.event_id, "outcome": stored.outcome})
