"""URLs: the API under /api/v1/ with no trailing slashes; schema and docs; admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from backend.accounts.api import views as accounts
from backend.api.errors import not_found_view
from backend.carparks.api import views as carparks
from backend.core.views import HealthView

router = SimpleRouter(trailing_slash=False)
router.register("me/vehicles", accounts.VehicleViewSet, basename="vehicle")
router.register("company/staff", accounts.StaffViewSet, basename="staff")
router.register("company/invitations", accounts.InvitationViewSet, basename="invitation")
router.register("carparks", carparks.CarParkViewSet, basename="carpark")
router.register(r"carparks/(?P<car_park_id>[0-9]+)/closures", carparks.ClosureViewSet, basename="closure")

api_v1 = [
    path("auth/register", accounts.RegisterView.as_view(), name="register"),
    path("auth/token", accounts.TokenView.as_view(), name="token"),
    path("auth/token/refresh", accounts.TokenRefresh.as_view(), name="token-refresh"),
    path("auth/password-reset", accounts.PasswordResetView.as_view(), name="password-reset"),
    path("auth/password-reset/confirm", accounts.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("auth/invitations/accept", accounts.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("me", accounts.MeView.as_view(), name="me"),
    path("company", accounts.CompanyView.as_view(), name="company"),
    path("health", HealthView.as_view(), name="health"),
    *router.urls,
    path("", include("bookings.urls")),
    path("", include("pricing.api.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    # Only the page the password-reset e-mail links to: the rest of django.contrib.auth.urls was
    # an unthrottled second way to send reset mails, and a login page without a template (500).
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    # Last: any other path is the 404 problem body, also with DEBUG on (no HTML debug page).
    re_path(r"^", not_found_view),
]

handler400 = "backend.api.errors.bad_request_view"
handler403 = "backend.api.errors.permission_denied_view"
handler404 = "backend.api.errors.not_found_view"
handler500 = "backend.api.errors.server_error_view"
