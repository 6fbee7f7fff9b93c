from datetime import datetime

from django.db import connection
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core import clock
from backend.core.tasks import heartbeat_path


@extend_schema(tags=["health"], responses={200: dict})
class HealthView(APIView):
    """Liveness: the database answers; when the Celery worker last ran a scheduled task."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    def get(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        path = heartbeat_path()
        last_beat = datetime.fromisoformat(path.read_text()) if path.exists() else None
        return Response(
            {
                "status": "ok",
                "database": connection.vendor,
                "celery_last_heartbeat": last_beat,
                "celery_heartbeat_age_seconds": round((clock.now() - last_beat).total_seconds()) if last_beat else None,
            }
        )
