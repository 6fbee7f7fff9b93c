from django.contrib import admin

from backend.carparks.models import CarPark, Closure, OpeningPeriod


class OpeningPeriodInline(admin.TabularInline):
    model = OpeningPeriod
    extra = 0


class ClosureInline(admin.TabularInline):
    model = Closure
    extra = 0


@admin.register(CarPark)
class CarParkAdmin(admin.ModelAdmin):
    list_display = ["name", "company", "timezone", "currency", "total_capacity", "covered", "archived_at"]
    list_filter = ["company", "covered", "timezone", "currency"]
    search_fields = ["name", "address"]
    readonly_fields = ["total_capacity", "created_at", "updated_at"]
    inlines = [OpeningPeriodInline, ClosureInline]


@admin.register(Closure)
class ClosureAdmin(admin.ModelAdmin):
    list_display = ["car_park", "starts_at", "ends_at", "reason"]
    list_filter = ["car_park__company"]
