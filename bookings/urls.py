"""Routes of the bookings app, included under /api/v1/ by backend.urls."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from bookings.api import gate, receipts, views

router = SimpleRouter(trailing_slash=False)
router.register("bookings", views.BookingViewSet, basename="booking")
router.register(r"carparks/(?P<car_park_id>[0-9]+)/gate-devices", gate.GateDeviceViewSet, basename="gate-device")

urlpatterns = [
    path("bookings/<int:pk>/receipt", receipts.ReceiptView.as_view(), name="booking-receipt"),
    path("bookings/<int:pk>/receipt.pdf", receipts.ReceiptPdfView.as_view(), name="booking-receipt-pdf"),
    path("bookings/<int:pk>/qr.png", receipts.QrCodeView.as_view(), name="booking-qr"),
    path(
        "carparks/<int:car_park_id>/availability", views.CarParkAvailabilityView.as_view(), name="carpark-availability"
    ),
    path("carparks/<int:car_park_id>/quote", views.CarParkQuoteView.as_view(), name="carpark-quote"),
    path("carparks/<int:car_park_id>/entries", gate.EntryView.as_view(), name="gate-entry"),
    path("carparks/<int:car_park_id>/exits", gate.ExitView.as_view(), name="gate-exit"),
    path("carparks/<int:car_park_id>/gate-events", gate.GateEventListView.as_view(), name="gate-events"),
    path("carparks/<int:car_park_id>/occupancy", gate.OccupancyView.as_view(), name="carpark-occupancy"),
    path(
        "payments/offline/<uuid:payment_id>/confirm",
        views.OfflinePaymentConfirmView.as_view(),
        name="offline-payment-confirm",
    ),
    path("payments/stripe/webhook", views.StripeWebhookView.as_view(), name="stripe-webhook"),
    *router.urls,
]
