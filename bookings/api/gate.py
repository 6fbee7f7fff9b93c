"""The gate API: entries and exits (operator staff or the car park's gate devices), and devices.

``POST /carparks/{id}/entries`` and ``/exits`` take ``{"code"}`` or ``{"plate"}``; drivers and
marketing get 403, another company's car park is 404, a device of another car park is 403.
``/carparks/{id}/gate-devices`` lets the car park's operator staff create (token shown once),
list and revoke devices. ``/carparks/{id}/gate-events`` lists what the gate saw (and the exits
the platform inferred), ``/carparks/{id}/occupancy`` counts who is inside now; both for the car
park's operator staff.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from backend.accounts.models import User, normalise_plate
from backend.accounts.permissions import IsOperator, acting_user
from backend.api.fields import AwareDateTimeField
from backend.api.filters import AwareIsoDateTimeFilter, StrictBooleanFilter
from backend.carparks.api.views import operator_car_park
from backend.carparks.models import CarPark
from backend.carparks.selectors import closures_overlapping, is_open_for_window
from backend.core import clock
from bookings import gate, occupancy
from bookings.api.authentication import DeviceTokenAuthentication, gate_device_of
from bookings.models import Booking, BookingStatus, GateDevice, GateEvent, GateEventKind, PaymentStatus

CLOCK_SKEW = timedelta(minutes=1)
CODE_PATTERN = re.compile(r"^[A-Z0-9]{4,12}$")
CAR_PARK_PARAMETER = OpenApiParameter("car_park_id", int, OpenApiParameter.PATH, description="The car park's id.")


# --- wire shapes -------------------------------------------------------------------------------


LATEST_REPORT = timedelta(days=7)


class GatePassageInputSerializer(serializers.Serializer):
    """Exactly one of ``code`` and ``plate``; ``occurred_at`` defaults to now."""

    code = serializers.CharField(required=False, max_length=32, help_text="The booking code, e.g. ABCD2345.")
    plate = serializers.CharField(required=False, max_length=32, help_text="The plate as read, e.g. 'AB12 CDE'.")
    occurred_at = AwareDateTimeField(required=False, help_text="When the vehicle passed (default: now).")

    def validate_code(self, value: str) -> str:
        code = re.sub(r"[\s\-]", "", value).upper()
        if not CODE_PATTERN.fullmatch(code):
            raise serializers.ValidationError("A booking code has 4 to 12 letters and digits.", code="invalid_code")
        return code

    def validate_plate(self, value: str) -> str:
        try:
            return normalise_plate(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc), code="invalid_plate") from None

    def validate_occurred_at(self, value: datetime) -> datetime:
        if value > clock.now() + CLOCK_SKEW:
            raise serializers.ValidationError("The time is in the future.", code="in_future")
        if value < clock.now() - LATEST_REPORT:
            # A gate that was offline sends its passages late, but not from before bookings existed.
            raise serializers.ValidationError(
                f"A passage is reported at most {LATEST_REPORT.days} days after it happened.", code="too_old"
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("code" in attrs) == ("plate" in attrs):
            raise serializers.ValidationError("Give either a booking code or a plate, not both.", code="code_or_plate")
        attrs.setdefault("occurred_at", clock.now())
        return attrs


class GateBookingSerializer(serializers.ModelSerializer):
    # Only the states the gate leaves a booking in (its own enum in the schema).
    status = serializers.ChoiceField(
        choices=[(BookingStatus.CHECKED_IN.value, "Checked in"), (BookingStatus.COMPLETED.value, "Completed")]
    )

    class Meta:
        model = Booking
        fields = ["id", "status", "plate", "start", "end"]


class OverstayPaymentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=[(PaymentStatus.PENDING.value, "Pending"), (PaymentStatus.SUCCEEDED.value, "Succeeded")],
        help_text="Succeeded when the saved card paid; pending while the driver has to pay in the app.",
    )


class OverstaySerializer(serializers.Serializer):
    minutes = serializers.IntegerField(help_text="Minutes past the booking's end.")
    amount_minor = serializers.IntegerField()
    currency = serializers.CharField()
    payment = OverstayPaymentSerializer()


class GatePassageResultSerializer(serializers.Serializer):
    """The answer to an entry or an exit (``overstay`` is always null for an entry)."""

    event_id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=GateEventKind.choices)
    occurred_at = serializers.DateTimeField()
    open_gate = serializers.BooleanField()
    drive_up = serializers.BooleanField(help_text="No booking matched: counted as a drive-up.")
    plate = serializers.CharField(allow_blank=True)
    booking = GateBookingSerializer(allow_null=True)
    overstay = OverstaySerializer(allow_null=True)


class GateDeviceSerializer(serializers.ModelSerializer):
    class Meta:
        model = GateDevice
        fields = ["id", "name", "token_prefix", "created_at", "revoked_at", "last_used_at"]


class GateDeviceCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class GateDeviceCreatedSerializer(GateDeviceSerializer):
    token = serializers.CharField(help_text="Shown only now: send it as 'Authorization: Device <token>'.")

    class Meta(GateDeviceSerializer.Meta):
        fields = [*GateDeviceSerializer.Meta.fields, "token"]


class GateEventSerializer(serializers.ModelSerializer):
    drive_up = serializers.BooleanField(source="is_drive_up", help_text="No booking matched this vehicle.")
    inferred = serializers.BooleanField(
        source="is_inferred",
        help_text="An exit the gate never reported: the platform closed the stay at the booking's end "
        "(replaced by the real exit if one comes).",
    )
    recorded_by = serializers.SerializerMethodField()
    currency = serializers.CharField(source="car_park.currency", help_text="Of overstay_minor.")

    class Meta:
        model = GateEvent
        fields = [
            "id",
            "kind",
            "occurred_at",
            "plate",
            "booking",
            "drive_up",
            "inferred",
            "overstay_minor",
            "currency",
            "recorded_by",
        ]

    @extend_schema_field(
        inline_serializer(
            "GateEventRecorder",
            {
                "type": serializers.ChoiceField(choices=["device", "staff", "platform"]),
                "name": serializers.CharField(allow_null=True),
            },
        )
    )
    def get_recorded_by(self, event: GateEvent) -> dict[str, Any]:
        if event.device_id is not None:
            return {"type": "device", "name": event.device.name if event.device else None}
        if event.staff_id is not None:
            return {"type": "staff", "name": event.staff.email if event.staff else None}
        return {"type": "platform", "name": None}


class GateEventFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=GateEventKind.choices)
    plate = django_filters.CharFilter(method="filter_plate", help_text="Any way it is written, e.g. 'ab12 cde'.")
    drive_up = StrictBooleanFilter(field_name="is_drive_up")
    inferred = StrictBooleanFilter(field_name="is_inferred")
    since = AwareIsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = AwareIsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = GateEvent
        fields: list[str] = []

    def filter_plate(self, queryset: QuerySet[GateEvent], name: str, value: str) -> QuerySet[GateEvent]:
        try:
            return queryset.filter(plate=normalise_plate(value))
        except ValueError as exc:
            raise ValidationError({"plate": [str(exc)]}, code="invalid_plate") from None


class OccupancyInsideSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    booked = serializers.IntegerField(help_text="Entered with a booking.")
    drive_up = serializers.IntegerField()


class OccupancySerializer(serializers.Serializer):
    car_park = serializers.IntegerField()
    at = serializers.DateTimeField()
    capacity = serializers.IntegerField(help_text="All bays.")
    inside = OccupancyInsideSerializer(help_text="Vehicles inside now, by the gate's entries and exits.")
    booked_not_arrived = serializers.IntegerField(help_text="Confirmed bookings under way whose car has not entered.")
    open_now = serializers.BooleanField(help_text="Within opening hours and no closure in effect.")
    free_for_drive_up = serializers.IntegerField(
        help_text="capacity - inside - booked_not_arrived, at least 0; 0 while the car park is not open."
    )


def _passage_data(passage: gate.GatePassage) -> dict[str, Any]:
    overstay = passage.overstay
    return {
        "event_id": passage.event.pk,
        "kind": passage.event.kind,
        "occurred_at": passage.event.occurred_at,
        "open_gate": True,
        "drive_up": passage.is_drive_up,
        "plate": passage.event.plate,
        "booking": passage.booking,
        "overstay": None
        if overstay is None
        else {
            "minutes": overstay.minutes,
            "amount_minor": overstay.amount_minor,
            "currency": overstay.currency,
            "payment": {"id": overstay.payment.pk, "status": overstay.payment.status},
        },
    }


# --- who may open the gate ---------------------------------------------------------------------


class IsOperatorOrGateDevice(BasePermission):
    """Operator staff (scoped to their company's car parks by the view) or a gate device."""

    message = "Only the car park's operator staff or its gate devices may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if gate_device_of(request) is not None:
            return True
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "is_operator", False))


class _GateView(APIView):
    # Devices here only; people sign in as everywhere else.
    authentication_classes = [DeviceTokenAuthentication, JWTAuthentication, SessionAuthentication]
    permission_classes = [IsOperatorOrGateDevice]

    def _caller(self, request: Request, car_park_id: int) -> tuple[CarPark, GateDevice | None, User | None]:
        """The car park, and the device or staff member at the gate (a device of another car park: 403)."""
        device = gate_device_of(request)
        if device is None:
            return operator_car_park(request, car_park_id), None, acting_user(request)
        if device.car_park_id != int(car_park_id):
            raise PermissionDenied("This gate device belongs to another car park.", code="wrong_car_park")
        return get_object_or_404(CarPark.objects.live(), pk=car_park_id), device, None

    def _pass(self, request: Request, car_park_id: int, record: Callable[..., gate.GatePassage]) -> Response:
        """Entry and exit alike: who calls, what they sent, then the gate service's answer."""
        car_park, device, staff = self._caller(request, car_park_id)
        data = GatePassageInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        passage = record(
            car_park=car_park,
            code=values.get("code"),
            plate=values.get("plate"),
            occurred_at=values["occurred_at"],
            device=device,
            staff=staff,
        )
        return Response(GatePassageResultSerializer(_passage_data(passage)).data, status=status.HTTP_201_CREATED)


class EntryView(_GateView):
    @extend_schema(
        operation_id="carparks_entries_create",
        summary="A vehicle enters: check in its booking (by code or plate) or count a drive-up",
        parameters=[CAR_PARK_PARAMETER],
        request=GatePassageInputSerializer,
        responses={201: GatePassageResultSerializer},
    )
    def post(self, request: Request, car_park_id: int) -> Response:
        return self._pass(request, car_park_id, gate.gate_entry_record)


class ExitView(_GateView):
    @extend_schema(
        operation_id="carparks_exits_create",
        summary="A vehicle leaves: complete its booking (overstay charged) or count a drive-up",
        parameters=[CAR_PARK_PARAMETER],
        request=GatePassageInputSerializer,
        responses={201: GatePassageResultSerializer},
    )
    def post(self, request: Request, car_park_id: int) -> Response:
        return self._pass(request, car_park_id, gate.gate_exit_record)


# --- what the gate saw --------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(
        summary="Entries and exits at the car park, newest first (its operator staff)",
        parameters=[CAR_PARK_PARAMETER],
    )
)
class GateEventListView(generics.ListAPIView):
    permission_classes = [IsAuthenticated, IsOperator]
    serializer_class = GateEventSerializer
    filterset_class = GateEventFilter
    queryset = GateEvent.objects.none()  # for the schema; get_queryset scopes to the car park

    def get_queryset(self) -> QuerySet[GateEvent]:
        if getattr(self, "swagger_fake_view", False):
            return GateEvent.objects.none()
        car_park = operator_car_park(self.request, self.kwargs["car_park_id"])
        return (
            GateEvent.objects.filter(car_park=car_park)
            .select_related("car_park", "device", "staff")
            .order_by("-occurred_at", "-pk")
        )


class OccupancyView(APIView):
    permission_classes = [IsAuthenticated, IsOperator]

    @extend_schema(
        summary="Who is inside now: vehicles by the gate's count, and bookings still to arrive",
        parameters=[CAR_PARK_PARAMETER],
        responses=OccupancySerializer,
    )
    def get(self, request: Request, car_park_id: int) -> Response:
        car_park = operator_car_park(request, car_park_id)
        now = clock.now()
        moment = (now, now + timedelta(minutes=1))
        open_now = is_open_for_window(car_park, *moment) and not closures_overlapping(car_park, *moment)
        inside = occupancy.vehicles_inside(car_park.pk, now)
        booked = sum(1 for stay in inside if not stay.is_drive_up)
        # A car that came in before its booking's entry window counts once, as inside.
        not_arrived = (
            Booking.objects.filter(car_park=car_park, status=BookingStatus.CONFIRMED, start__lte=now, end__gt=now)
            .exclude(plate__in=[stay.plate for stay in inside])
            .count()
        )
        body = {
            "car_park": car_park.pk,
            "at": now,
            "capacity": car_park.total_capacity,
            "inside": {"total": len(inside), "booked": booked, "drive_up": len(inside) - booked},
            "booked_not_arrived": not_arrived,
            "open_now": open_now,
            "free_for_drive_up": max(car_park.total_capacity - len(inside) - not_arrived, 0) if open_now else 0,
        }
        return Response(OccupancySerializer(body).data)


# --- devices -----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="The car park's gate devices (its operator staff)", parameters=[CAR_PARK_PARAMETER]),
    create=extend_schema(
        summary="Register a gate device; its token is shown only in this answer",
        parameters=[CAR_PARK_PARAMETER],
        request=GateDeviceCreateSerializer,
        responses={201: GateDeviceCreatedSerializer},
    ),
    destroy=extend_schema(
        summary="Revoke a gate device's token", parameters=[CAR_PARK_PARAMETER], responses={204: None}
    ),
)
class GateDeviceViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, IsOperator]
    serializer_class = GateDeviceSerializer
    lookup_value_regex = "[0-9]+"
    queryset = GateDevice.objects.none()  # for the schema; get_queryset scopes to the car park

    def _car_park(self) -> CarPark:
        return operator_car_park(self.request, self.kwargs["car_park_id"])

    def get_queryset(self) -> QuerySet[GateDevice]:
        if getattr(self, "swagger_fake_view", False):
            return GateDevice.objects.none()
        return GateDevice.objects.filter(car_park=self._car_park()).order_by("-created_at", "-pk")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        car_park = self._car_park()
        data = GateDeviceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device, token = gate.device_token_create(
            actor=acting_user(request), car_park=car_park, name=data.validated_data["name"]
        )
        body = {**GateDeviceSerializer(device).data, "token": token}
        return Response(
            body,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/carparks/{car_park.pk}/gate-devices/{device.pk}"},
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        gate.device_token_revoke(actor=acting_user(request), device=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
