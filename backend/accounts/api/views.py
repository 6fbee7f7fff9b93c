from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle, ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from backend.accounts import services
from backend.accounts.api import serializers as s
from backend.accounts.models import Invitation, User, Vehicle
from backend.accounts.permissions import IsCompanyAdmin, IsDriver, acting_user, company_id_of


class AuthThrottleMixin:
    throttle_classes: Sequence[type[BaseThrottle]] = [ScopedRateThrottle]
    throttle_scope = "auth"


@extend_schema(tags=["auth"])
class TokenView(AuthThrottleMixin, TokenObtainPairView):
    """Sign in with e-mail and password: an access token and a refresh token."""


@extend_schema(tags=["auth"])
class TokenRefresh(AuthThrottleMixin, TokenRefreshView):
    """Exchange a refresh token for a new access token."""


@extend_schema(tags=["auth"], request=s.RegisterSerializer, responses={201: s.RegisteredSerializer})
class RegisterView(AuthThrottleMixin, APIView):
    """Create a driver account (operator and marketing staff join by invitation)."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        data = s.RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.driver_register(**data.validated_data)
        return Response(s.RegisteredSerializer(user).data, status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["auth"],
    request=s.PasswordResetSerializer,
    responses={202: OpenApiResponse(description="Sent if the account exists")},
)
class PasswordResetView(AuthThrottleMixin, APIView):
    """E-mail a password-reset link. Answers 202 whether or not the account exists."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        data = s.PasswordResetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_request(email=data.validated_data["email"])
        return Response(
            {"detail": "If the account exists, a reset link is on its way."}, status=status.HTTP_202_ACCEPTED
        )


@extend_schema(tags=["auth"], request=s.PasswordResetConfirmSerializer, responses={204: None})
class PasswordResetConfirmView(AuthThrottleMixin, APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        data = s.PasswordResetConfirmSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_confirm(**data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["auth"], request=s.InvitationAcceptSerializer, responses={200: s.MeSerializer})
class InvitationAcceptView(AuthThrottleMixin, APIView):
    """Accept a company invitation with the token from the e-mail."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        data = s.InvitationAcceptSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.invitation_accept(**data.validated_data)
        return Response(s.MeSerializer(user).data)


@extend_schema(tags=["me"])
class MeView(generics.RetrieveUpdateAPIView):
    """The signed-in account. Names and phone can be changed; role and company cannot."""

    serializer_class = s.MeSerializer
    permission_classes = [IsAuthenticated]
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self) -> User:
        return acting_user(self.request)


@extend_schema(tags=["me"])
class VehicleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """The driver's vehicles. Plates are normalised: upper case, no spaces or dashes."""

    serializer_class = s.VehicleSerializer
    permission_classes = [IsDriver]
    queryset = Vehicle.objects.none()
    lookup_value_regex = "[0-9]+"

    def get_queryset(self) -> QuerySet[Vehicle]:
        if getattr(self, "swagger_fake_view", False):
            return Vehicle.objects.none()
        return Vehicle.objects.filter(owner=acting_user(self.request))

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        vehicle = services.vehicle_add(owner=acting_user(request), plate=data.validated_data["plate"])
        return Response(s.VehicleSerializer(vehicle).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Vehicle) -> None:
        services.vehicle_delete(vehicle=instance)


@extend_schema(tags=["company"])
class CompanyView(generics.RetrieveAPIView):
    serializer_class = s.CompanySerializer

    def get_object(self) -> Any:
        user = acting_user(self.request)
        if user.company is None:
            raise NotFound("You do not belong to a company.")
        return user.company


@extend_schema(tags=["company"])
class StaffViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The company's operator and marketing staff. Removing someone keeps their account as a driver."""

    serializer_class = s.StaffSerializer
    permission_classes = [IsCompanyAdmin]
    queryset = User.objects.none()
    lookup_value_regex = "[0-9]+"

    def get_queryset(self) -> QuerySet[User]:
        if getattr(self, "swagger_fake_view", False):
            return User.objects.none()
        company_id = company_id_of(self.request)
        if company_id is None:
            return User.objects.none()
        return User.objects.filter(company_id=company_id).order_by("email")

    def perform_destroy(self, instance: User) -> None:
        services.staff_remove(actor=acting_user(self.request), member=instance)


@extend_schema(tags=["company"])
class InvitationViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Invite operator staff or marketing into the company (company admins only)."""

    serializer_class = s.InvitationSerializer
    permission_classes = [IsCompanyAdmin]
    queryset = Invitation.objects.none()

    def get_queryset(self) -> QuerySet[Invitation]:
        if getattr(self, "swagger_fake_view", False):
            return Invitation.objects.none()
        company_id = company_id_of(self.request)
        if company_id is None:
            return Invitation.objects.none()
        return Invitation.objects.filter(company_id=company_id)

    @extend_schema(request=s.InvitationInputSerializer, responses={201: s.InvitationSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = s.InvitationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = services.invitation_create(actor=acting_user(request), **data.validated_data)
        return Response(s.InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)
