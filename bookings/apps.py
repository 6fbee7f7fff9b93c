from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"

    def ready(self) -> None:
        # Inventory changes in backend.carparks must respect what is sold; it cannot import us.
        from backend.carparks import services as carparks
        from backend.carparks.api import views as carpark_views
        from bookings import services
        from bookings.api.views import search_results_add_availability_and_price

        if services.guard_inventory_change not in carparks.change_guards:
            carparks.change_guards.append(services.guard_inventory_change)
            carparks.closure_guards.append(services.guard_closure)
            carparks.closure_removed_hooks.append(services.on_closure_removed)
            carpark_views.search_enrichers.append(search_results_add_availability_and_price)
