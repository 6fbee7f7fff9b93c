"""Rate-policy routes, included by ``backend/urls.py`` under ``/api/v1/`` (no trailing slashes)."""

from django.urls import path

from pricing.api import views

urlpatterns = [
    path("carparks/<int:car_park_id>/rate-rule", views.RateRuleView.as_view(), name="rate-rule"),
    path("carparks/<int:car_park_id>/rate-overrides", views.RateOverrideListView.as_view(), name="rate-overrides"),
    path(
        "carparks/<int:car_park_id>/rate-overrides/<int:override_id>",
        views.RateOverrideDetailView.as_view(),
        name="rate-override",
    ),
    path("carparks/<int:car_park_id>/rates", views.RateCalendarView.as_view(), name="rates"),
    path("carparks/<int:car_park_id>/rates/explain", views.RateExplainView.as_view(), name="rates-explain"),
    path("carparks/<int:car_park_id>/rate-history", views.RateHistoryView.as_view(), name="rate-history"),
    path("carparks/<int:car_park_id>/forecast", views.ForecastView.as_view(), name="rate-forecast"),
    path("carparks/<int:car_park_id>/forecast.png", views.ForecastChartView.as_view(), name="rate-forecast-chart"),
]
