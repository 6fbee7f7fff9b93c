from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from backend.accounts.permissions import IsOperator, ReadAnyoneWriteOperator, acting_user, company_id_of
from backend.api.pagination import CountInPagePagination
from backend.audit.models import AuditEntry
from backend.carparks import services
from backend.carparks.api.filters import CarParkFilter
from backend.carparks.api.serializers import (
    CarParkInputSerializer,
    CarParkPrivateSerializer,
    CarParkSearchResultSerializer,
    CarParkSerializer,
    ClosureInputSerializer,
    ClosureSerializer,
)
from backend.carparks.models import CarPark, Closure, OpeningPeriod
from backend.carparks.selectors import opening_periods_of
from backend.core import clock

# Apps that add to each search result (bookings: free bays and the price for a start/end window)
# register here from their AppConfig.ready, as they do with the inventory guards: this app
# cannot import them. Each gets the request, the page's serialized rows and their car parks, and
# may raise a ValidationError (a 400) for its own query parameters.
SearchEnricher = Callable[[Request, list[dict[str, Any]], list[CarPark]], None]
search_enrichers: list[SearchEnricher] = []

SEARCH_WINDOW_PARAMETERS = [
    OpenApiParameter(
        "start", str, description="With end: add each result's free bays and price for [start, end) (ISO 8601 + offset)"
    ),
    OpenApiParameter("end", str, description="ISO 8601 with an offset"),
    OpenApiParameter("bay_type", str, enum=["standard", "accessible", "ev_charging"], required=False),
]


def _is_staff_of(user: Any, car_park: CarPark) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.company_id and user.company_id == car_park.company_id)


def operator_car_park(request: Request, car_park_id: Any) -> CarPark:
    """The car park if it belongs to the requesting operator's company; 404 otherwise."""
    return get_object_or_404(CarPark.objects.live().of_company(company_id_of(request)), pk=car_park_id)


@extend_schema_view(
    list=extend_schema(
        summary="Search car parks (nearest first with lat/lng)",
        parameters=SEARCH_WINDOW_PARAMETERS,
        responses=CarParkSearchResultSerializer(many=True),
    ),
    retrieve=extend_schema(
        summary="A car park (private fields for its own operator)", responses=CarParkPrivateSerializer
    ),
    create=extend_schema(
        summary="Create a car park (operators)",
        request=CarParkInputSerializer,
        responses={201: CarParkPrivateSerializer},
    ),
    partial_update=extend_schema(
        summary="Change a car park (its operator)", request=CarParkInputSerializer, responses=CarParkPrivateSerializer
    ),
    update=extend_schema(
        summary="Replace a car park (its operator)", request=CarParkInputSerializer, responses=CarParkPrivateSerializer
    ),
    destroy=extend_schema(summary="Archive a car park (its operator)"),
)
class CarParkViewSet(viewsets.ModelViewSet):
    """Everyone reads the catalogue; operators create and change their own company's car parks."""

    permission_classes = [ReadAnyoneWriteOperator]
    filterset_class = CarParkFilter
    lookup_value_regex = "[0-9]+"

    def get_queryset(self) -> QuerySet[CarPark]:
        queryset = CarPark.objects.live().select_related("company")
        if self.action != "list":  # a list reads its periods in one query of plain tuples (see list)
            queryset = queryset.prefetch_related(
                Prefetch("opening_periods", queryset=OpeningPeriod.objects.order_by("weekday"))
            )
        if self.action in ("update", "partial_update", "destroy", "audit_log"):
            # Another company's car park is not found, rather than forbidden: no probing.
            queryset = queryset.of_company(company_id_of(self.request))
        return queryset

    @property
    def paginator(self) -> Any:
        """A search by position sorts every match by distance anyway, so its page can carry the total
        (one query); other lists keep the plain count, which an index-ordered page can stop early for."""
        if not hasattr(self, "_paginator"):
            by_distance = self.action == "list" and "lat" in self.request.query_params
            self._paginator = CountInPagePagination() if by_distance else super().paginator
        return self._paginator

    def get_serializer_class(self) -> type[BaseSerializer]:
        if self.action == "list":
            return CarParkSearchResultSerializer
        return CarParkSerializer

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        car_parks = list(self.paginate_queryset(self.filter_queryset(self.get_queryset())) or [])
        periods = opening_periods_of([car_park.pk for car_park in car_parks])
        rows = self.get_serializer(car_parks, many=True, context={"opening_periods": periods}).data
        for enrich in search_enrichers:
            enrich(request, rows, car_parks)
        return self.get_paginated_response(rows)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        car_park = self.get_object()
        serializer_class = CarParkPrivateSerializer if _is_staff_of(request.user, car_park) else CarParkSerializer
        return Response(serializer_class(car_park).data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = CarParkInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields, periods = data.to_service_fields(existing=None)
        car_park = services.carpark_create(actor=acting_user(request), fields=fields, opening_periods=periods or [])
        return Response(CarParkPrivateSerializer(car_park).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        car_park = self.get_object()
        data = CarParkInputSerializer(data=request.data, partial=kwargs.get("partial", False))
        data.is_valid(raise_exception=True)
        fields, periods = data.to_service_fields(existing=car_park)
        car_park = services.carpark_update(
            actor=acting_user(request), car_park=car_park, fields=fields, opening_periods=periods
        )
        return Response(CarParkPrivateSerializer(car_park).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.carpark_archive(actor=acting_user(request), car_park=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Who changed this car park, when, before and after (its operator)", responses=None)
    @action(detail=True, methods=["get"], url_path="audit-log", permission_classes=[IsOperator])
    def audit_log(self, request: Request, pk: str) -> Response:
        car_park = self.get_object()
        closure_ids = [str(i) for i in Closure.objects.filter(car_park=car_park).values_list("id", flat=True)]
        entries = AuditEntry.objects.filter(
            object_type="carparks.carpark", object_id=str(car_park.pk)
        ) | AuditEntry.objects.filter(object_type="carparks.closure", object_id__in=closure_ids)
        page = self.paginate_queryset(entries.order_by("-at", "-id"))
        rows = [
            {
                "at": entry.at,
                "actor": entry.actor_email,
                "action": entry.action,
                "object_type": entry.object_type,
                "object_id": entry.object_id,
                "before": entry.before,
                "after": entry.after,
            }
            for entry in page or []
        ]
        return self.get_paginated_response(rows)


@extend_schema(parameters=[OpenApiParameter("car_park_id", int, OpenApiParameter.PATH)])
class ClosureViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Closures of a car park: everyone reads current and upcoming ones, its company the past ones too;
    its operator adds and removes them."""

    serializer_class = ClosureSerializer
    lookup_value_regex = "[0-9]+"

    def get_permissions(self) -> list[Any]:
        if self.action == "list":
            return []
        return [IsAuthenticated(), IsOperator()]

    def car_park(self) -> CarPark:
        if self.action == "list":
            return get_object_or_404(CarPark.objects.live(), pk=self.kwargs["car_park_id"])
        return operator_car_park(self.request, self.kwargs["car_park_id"])

    def get_queryset(self) -> QuerySet[Closure]:
        if getattr(self, "swagger_fake_view", False):
            return Closure.objects.none()
        car_park = self.car_park()
        closures = Closure.objects.filter(car_park=car_park)
        if not _is_staff_of(self.request.user, car_park):  # the past is the operator's record
            closures = closures.filter(ends_at__gt=clock.now())
        return closures

    @extend_schema(request=ClosureInputSerializer, responses={201: ClosureSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        car_park = self.car_park()
        data = ClosureInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        closure = services.closure_create(actor=acting_user(request), car_park=car_park, **data.validated_data)
        return Response(ClosureSerializer(closure).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Closure) -> None:
        services.closure_delete(actor=acting_user(self.request), closure=instance)
