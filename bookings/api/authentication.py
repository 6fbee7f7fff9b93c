"""Gate devices sign their requests with ``Authorization: Device <token>`` (gate views only)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from bookings import gate
from bookings.models import GateDevice

KEYWORD = "Device"


class GateDevicePrincipal:
    """``request.user`` for a device: authenticated, but no person and no role (``request.auth`` is the device)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    company_id = None
    role = None
    is_driver = False
    is_operator = False
    is_marketing = False
    is_platform_admin = False

    def __init__(self, device: GateDevice) -> None:
        self.device = device
        # Throttles key authenticated callers by ``pk``: each device gets its own bucket.
        self.pk = self.id = f"gate-device-{device.pk}"

    def __str__(self) -> str:
        return f"gate device {self.device.pk} ({self.device.name})"


class DeviceTokenAuthentication(BaseAuthentication):
    """``Authorization: Device <token>``; an unknown or revoked token is a 401."""

    def authenticate(self, request: Request) -> tuple[GateDevicePrincipal, GateDevice] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() != KEYWORD.lower():
            return None  # not ours: let the other authenticators try
        if len(parts) != 2:
            raise AuthenticationFailed("Send 'Authorization: Device <token>'.", code="device_token_invalid")
        try:
            device = gate.device_token_verify(parts[1].decode())
        except UnicodeDecodeError:
            raise AuthenticationFailed("Unknown gate device token.", code="device_token_invalid") from None
        except gate.InvalidDeviceToken as exc:
            raise AuthenticationFailed(str(exc), code=exc.code) from None
        return GateDevicePrincipal(device), device

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="gate"'


def gate_device_of(request: Request) -> GateDevice | None:
    """The device that signed the request, if a device did."""
    return request.auth if isinstance(request.auth, GateDevice) else None


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = DeviceTokenAuthentication
    name = "gateDeviceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A gate device's token: `Authorization: Device <token>` (shown once when created).",
        }
