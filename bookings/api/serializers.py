"""Wire shapes of the bookings API. Amounts are integer minor units with an ISO currency."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from backend.api.fields import AwareDateTimeField
from backend.carparks.models import BayType
from backend.core.clock import iso_utc
from bookings.models import Booking, BookingExtension, Payment, PaymentKind, PaymentStatus
from bookings.services import cancellation_policy_sold_with, price_lines_of
from pricing.quotes import Quote

PAYMENT_METHODS = ("pm_card_visa", "pm_card_chargeDeclined")


class WindowQuerySerializer(serializers.Serializer):
    """``start``/``end`` query parameters (with an offset) and an optional bay type."""

    start = AwareDateTimeField()
    end = AwareDateTimeField()
    bay_type = serializers.ChoiceField(choices=BayType.choices, default=BayType.STANDARD)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "The end must be after the start."}, code="end_before_start")
        if attrs["end"] - attrs["start"] > timedelta(days=settings.BOOKING_MAX_STAY_DAYS):
            # The longest stay anyone can book: availability and prices of longer windows mean nothing,
            # and their work grows with the window.
            raise serializers.ValidationError(
                {"end": f"A window lasts at most {settings.BOOKING_MAX_STAY_DAYS} days."}, code="stay_too_long"
            )
        return attrs


class OptionalWindowQuerySerializer(WindowQuerySerializer):
    start = AwareDateTimeField(required=False)
    end = AwareDateTimeField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("start" in attrs) != ("end" in attrs):
            missing = "end" if "start" in attrs else "start"
            raise serializers.ValidationError({missing: "Give start and end together."}, code="required")
        return super().validate(attrs) if "start" in attrs else attrs


class BookingCreateSerializer(serializers.Serializer):
    car_park = serializers.IntegerField(min_value=1)
    start = AwareDateTimeField()
    end = AwareDateTimeField()
    vehicle = serializers.IntegerField(min_value=1, help_text="The id of one of your vehicles.")
    bay_type = serializers.ChoiceField(choices=BayType.choices, default=BayType.STANDARD)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "The end must be after the start."}, code="end_before_start")
        if attrs["end"] - attrs["start"] > timedelta(days=settings.BOOKING_MAX_STAY_DAYS):
            # The longest stay anyone can book: availability and prices of longer windows mean nothing,
            # and their work grows with the window.
            raise serializers.ValidationError(
                {"end": f"A window lasts at most {settings.BOOKING_MAX_STAY_DAYS} days."}, code="stay_too_long"
            )
        return attrs


class ExtendSerializer(serializers.Serializer):
    end = AwareDateTimeField(help_text="The new end of the stay.")


class OfflineConfirmSerializer(serializers.Serializer):
    payment_method = serializers.ChoiceField(
        choices=PAYMENT_METHODS, help_text="pm_card_visa succeeds; pm_card_chargeDeclined is declined."
    )


def quote_data(quote: Quote) -> dict[str, Any]:
    return {
        "car_park": quote.car_park_id,
        "start": iso_utc(quote.start),
        "end": iso_utc(quote.end),
        "amount_minor": quote.amount_minor,
        "currency": quote.currency,
        "tax_minor": quote.tax.to_minor(),
        "tax_rate": str(quote.tax_rate),
        "lines": price_lines_of(quote),
        "rate_source": quote.rate_source,
        "cancellation_policy": quote.cancellation_policy.as_dict(),
        "valid_until": iso_utc(quote.valid_until),
    }


def _decimal_text(value: Decimal, model_field: Any) -> str:
    """A Decimal as DRF's DecimalField writes it: fixed point, at the model field's places."""
    return f"{value.quantize(Decimal(1).scaleb(-model_field.decimal_places)):f}"


class PaymentSerializer(serializers.ModelSerializer):
    """The client secret is for the paying driver's app only, while it can pay; staff never see it.

    Like the other serializers of this module, it writes its rows by hand in
    ``to_representation``: DRF would build every declared field again for each instance, a large
    share of a booking request. The declarations stay the schema, and the tests check that the
    rows equal what DRF's generic ``to_representation`` makes of the same declarations.
    """

    class Meta:
        model = Payment
        fields = ["id", "kind", "provider", "client_secret", "status", "amount_minor", "currency", "refunded_minor"]

    def to_representation(self, instance: Payment) -> dict[str, Any]:
        return {
            "id": str(instance.pk),
            "kind": str(instance.kind),
            "provider": instance.provider,
            "client_secret": instance.client_secret if self._shows_secret_of(instance) else None,
            "status": str(instance.status),
            "amount_minor": instance.amount_minor,
            "currency": instance.currency,
            "refunded_minor": instance.refunded_minor,
        }

    def _shows_secret_of(self, payment: Payment) -> bool:
        """The paying driver's app needs it while the payment can still be paid: pending, or after a
        declined attempt (the same PaymentIntent takes another card)."""
        viewer = getattr(self.context.get("request"), "user", None)
        payable = payment.status in (PaymentStatus.PENDING, PaymentStatus.FAILED)
        return viewer is not None and viewer.pk == payment.booking.driver_id and payable


class ExtensionSerializer(serializers.ModelSerializer):
    payment = serializers.SerializerMethodField()

    class Meta:
        model = BookingExtension
        fields = ["id", "status", "old_end", "new_end", "amount_minor", "currency", "hold_expires_at", "payment"]

    def to_representation(self, instance: BookingExtension) -> dict[str, Any]:
        return {
            "id": instance.pk,
            "status": str(instance.status),
            "old_end": iso_utc(instance.old_end),
            "new_end": iso_utc(instance.new_end),
            "amount_minor": instance.amount_minor,
            "currency": instance.currency,
            "hold_expires_at": iso_utc(instance.hold_expires_at),
            "payment": self.get_payment(instance),
        }

    @extend_schema_field(PaymentSerializer(allow_null=True))
    def get_payment(self, extension: BookingExtension) -> dict[str, Any] | None:
        payment = next(iter(extension.payments.all()), None)
        return PaymentSerializer(payment, context=self.context).data if payment is not None else None


class BookingSerializer(serializers.ModelSerializer):
    payment = serializers.SerializerMethodField()
    payments = serializers.SerializerMethodField()
    extensions = ExtensionSerializer(many=True, read_only=True)
    paid_minor = serializers.SerializerMethodField()
    refunded_minor = serializers.SerializerMethodField()
    cancellation_policy = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Booking
        fields = [
            "id",
            "status",
            "car_park",
            "start",
            "end",
            "vehicle",
            "plate",
            "bay_type",
            "amount_minor",
            "currency",
            "tax_minor",
            "tax_rate",
            "price_lines",
            "paid_minor",
            "refunded_minor",
            "cancellation_policy",
            "hold_expires_at",
            "code",
            "payment",
            "payments",
            "extensions",
            "created_at",
            "confirmed_at",
            "checked_in_at",
            "checked_out_at",
            "cancelled_at",
            "cancellation_reason",
            "links",
        ]

    def to_representation(self, instance: Booking) -> dict[str, Any]:
        return {
            "id": instance.pk,
            "status": str(instance.status),
            "car_park": instance.car_park_id,
            "start": iso_utc(instance.start),
            "end": iso_utc(instance.end),
            "vehicle": instance.vehicle_id,
            "plate": instance.plate,
            "bay_type": str(instance.bay_type),
            "amount_minor": instance.amount_minor,
            "currency": instance.currency,
            "tax_minor": instance.tax_minor,
            "tax_rate": _decimal_text(instance.tax_rate, Booking._meta.get_field("tax_rate")),
            "price_lines": instance.price_lines,
            "paid_minor": self.get_paid_minor(instance),
            "refunded_minor": self.get_refunded_minor(instance),
            "cancellation_policy": self.get_cancellation_policy(instance),
            "hold_expires_at": iso_utc(instance.hold_expires_at),
            "code": instance.code,
            "payment": self.get_payment(instance),
            "payments": self.get_payments(instance),
            "extensions": [
                ExtensionSerializer(extension, context=self.context).data for extension in instance.extensions.all()
            ],
            "created_at": iso_utc(instance.created_at),
            "confirmed_at": iso_utc(instance.confirmed_at),
            "checked_in_at": iso_utc(instance.checked_in_at),
            "checked_out_at": iso_utc(instance.checked_out_at),
            "cancelled_at": iso_utc(instance.cancelled_at),
            "cancellation_reason": instance.cancellation_reason,
            "links": self.get_links(instance),
        }

    def _payments(self, booking: Booking) -> list[Payment]:
        return list(booking.payments.all())

    @extend_schema_field(PaymentSerializer(allow_null=True))
    def get_payment(self, booking: Booking) -> dict[str, Any] | None:
        """The booking's own payment (not an extension's or an overstay's)."""
        payments = [p for p in self._payments(booking) if p.kind == PaymentKind.BOOKING]
        return PaymentSerializer(payments[-1], context=self.context).data if payments else None

    @extend_schema_field(PaymentSerializer(many=True))
    def get_payments(self, booking: Booking) -> list[dict[str, Any]]:
        """Every payment: the booking's, extensions' and an overstay charged at the exit."""
        return list(PaymentSerializer(self._payments(booking), many=True, context=self.context).data)

    @extend_schema_field(OpenApiTypes.INT)
    def get_paid_minor(self, booking: Booking) -> int:
        return sum(p.amount_minor for p in self._payments(booking) if p.status == PaymentStatus.SUCCEEDED)

    @extend_schema_field(OpenApiTypes.INT)
    def get_refunded_minor(self, booking: Booking) -> int:
        return sum(p.refunded_minor for p in self._payments(booking))

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_cancellation_policy(self, booking: Booking) -> dict[str, object]:
        """The rule quoted when the bay was held, which its cancellation follows."""
        return cancellation_policy_sold_with(booking).as_dict()

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_links(self, booking: Booking) -> dict[str, str | None]:
        has_code = bool(booking.code)
        return {
            "receipt": reverse("booking-receipt", args=[booking.pk]) if has_code else None,
            "receipt_pdf": reverse("booking-receipt-pdf", args=[booking.pk]) if has_code else None,
            "qr": reverse("booking-qr", args=[booking.pk]) if has_code else None,
        }
