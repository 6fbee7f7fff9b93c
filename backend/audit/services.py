from __future__ import annotations

from typing import Any

from django.db import models

from backend.accounts.models import Company, User
from backend.audit.models import AuditEntry
from backend.core import clock
from backend.core.logging import current_request_id


def audit_record(
    *,
    actor: User | None,
    action: str,
    target: models.Model,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    company: Company | None = None,
) -> AuditEntry:
    """Append one audit row. Call it inside the transaction that makes the change."""
    return AuditEntry.objects.create(
        at=clock.now(),
        actor=actor,
        actor_email=getattr(actor, "email", "") or "",
        company=company if company is not None else getattr(actor, "company", None),
        action=action,
        object_type=target._meta.label_lower,
        object_id=str(target.pk),
        before=before,
        after=after,
        request_id=current_request_id(),
    )
