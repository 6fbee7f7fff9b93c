# The new index is built before the old one goes, both without blocking writes on PostgreSQL.

from django.conf import settings
from django.db import migrations, models

from backend.core.migration_operations import (
    AddIndexConcurrentlyWherePossible,
    RemoveIndexConcurrentlyWherePossible,
)


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ('accounts', '0001_initial'),
        ('bookings', '0002_idempotency_body_text'),
        ('carparks', '0002_carpark_entry_grace_minutes_and_more'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrentlyWherePossible(
            model_name='booking',
            index=models.Index(fields=['driver', 'status', 'hold_expires_at'], name='booking_driver_status_expiry'),
        ),
        RemoveIndexConcurrentlyWherePossible(
            model_name='booking',
            name='booking_driver_status',
        ),
    ]
