from django.apps import AppConfig


class CarParksConfig(AppConfig):
    name = "backend.carparks"
    label = "carparks"
    verbose_name = "Car parks"
