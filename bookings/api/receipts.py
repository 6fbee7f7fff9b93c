"""Receipts (HTML and PDF) and the gate QR code of a booking.

The same visibility as the bookings API: the booking's driver and operator staff of its company;
anyone else gets 404. Success bodies are HTML, PDF or PNG; every error stays a JSON problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.accounts.permissions import acting_user
from backend.api.errors import PROBLEM_CONTENT_TYPE
from backend.api.schema import ProblemSerializer
from bookings import receipts, services
from bookings.models import Booking

PRIVATE = {"Cache-Control": "private, no-store"}


class _DocumentRenderer(BaseRenderer):
    """Passes a ready body (str or bytes) through; anything else is a problem document, as JSON."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> Any:
        if isinstance(data, bytes | str):
            return data
        return JSONRenderer().render(data, accepted_media_type, renderer_context)


class HtmlRenderer(_DocumentRenderer):
    media_type = "text/html"
    format = "html"
    charset = "utf-8"


class PdfRenderer(_DocumentRenderer):
    media_type = "application/pdf"
    format = "pdf"
    charset = None


class PngRenderer(_DocumentRenderer):
    media_type = "image/png"
    format = "png"
    charset = None


def _conflict(description: str) -> dict[Any, Any]:
    return {(409, PROBLEM_CONTENT_TYPE): OpenApiResponse(ProblemSerializer, description=description)}


NOT_PAID = "`not_paid`: no payment has succeeded (and it is not a confirmed free booking)."


class _BookingDocumentView(APIView):
    permission_classes = [IsAuthenticated]

    def visible_booking(self, pk: int, bookings: QuerySet[Booking] | None = None) -> Booking:
        """The booking if the user may see it (404 otherwise, as in the bookings API)."""
        visible = services.bookings_visible_to(acting_user(self.request))
        queryset = Booking.objects.all() if bookings is None else bookings
        return get_object_or_404(queryset.filter(visible), pk=pk)


class ReceiptView(_BookingDocumentView):
    renderer_classes = [HtmlRenderer]

    @extend_schema(
        operation_id="bookings_receipt_html",
        tags=["bookings"],
        summary="The booking's receipt as a printable HTML page",
        responses={
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="A self-contained HTML page."),
            **_conflict(NOT_PAID),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        receipt = receipts.receipt_for(self.visible_booking(pk, receipts.receipt_bookings()))
        return Response(receipts.receipt_html(receipt), headers=PRIVATE)


class ReceiptPdfView(_BookingDocumentView):
    renderer_classes = [PdfRenderer]

    @extend_schema(
        operation_id="bookings_receipt_pdf",
        tags=["bookings"],
        summary="The booking's receipt as a PDF",
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="An A4 PDF, shown inline."),
            **_conflict(NOT_PAID),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        receipt = receipts.receipt_for(self.visible_booking(pk, receipts.receipt_bookings()))
        return Response(
            receipts.receipt_pdf(receipt),
            headers={**PRIVATE, "Content-Disposition": f'inline; filename="{receipt.pdf_filename}"'},
        )


class QrCodeView(_BookingDocumentView):
    renderer_classes = [PngRenderer]

    @extend_schema(
        operation_id="bookings_qr_png",
        tags=["bookings"],
        summary="The booking code as a QR image, for the gate to scan",
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="A PNG QR code of the booking code."),
            **_conflict("`no_code`: only a confirmed or checked-in booking has a code."),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(receipts.qr_png(self.visible_booking(pk)), headers=PRIVATE)
