"""Account writes: registration, vehicles, staff invitations, password reset."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from rest_framework.exceptions import ValidationError

from backend.accounts.models import Company, Invitation, Role, User, Vehicle, normalise_plate
from backend.api.errors import Conflict, DomainError, InvalidInput
from backend.audit.services import audit_record
from backend.core import clock

INVITATION_VALIDITY = timedelta(days=7)


def _check_password(password: str, user: User, field: str = "password") -> None:
    """Django's password validators, reported as field errors on ``field``."""
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationError({field: list(exc.messages)}) from exc


def _staff_snapshot(user: User) -> dict[str, object]:
    return {
        "email": user.email,
        "role": user.role,
        "company": user.company_id,
        "is_company_admin": user.is_company_admin,
        "is_active": user.is_active,
    }


def _email_in_use(email: str) -> bool:
    return User.objects.filter(email__iexact=email).exists()


@transaction.atomic
def driver_register(*, email: str, password: str, first_name: str = "", last_name: str = "", phone: str = "") -> User:
    """Create a driver account. Raises ``InvalidInput`` for a taken e-mail or a weak password."""
    email = email.strip().lower()
    if _email_in_use(email):
        raise InvalidInput("email", "An account with this e-mail address already exists.", code="unique")
    user = User(email=email, first_name=first_name, last_name=last_name, phone=phone, role=Role.DRIVER)
    _check_password(password, user)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # a concurrent registration with the same address won the race
        raise InvalidInput("email", "An account with this e-mail address already exists.", code="unique") from exc
    return user


@transaction.atomic
def vehicle_add(*, owner: User, plate: str) -> Vehicle:
    try:
        normalised = normalise_plate(plate)
    except ValueError as exc:
        raise InvalidInput("plate", str(exc), code="invalid_plate") from exc
    if owner.vehicles.filter(plate=normalised).exists():
        raise InvalidInput("plate", "You have already registered this plate.", code="unique")
    try:
        with transaction.atomic():
            return Vehicle.objects.create(owner=owner, plate=normalised)
    except IntegrityError as exc:
        raise InvalidInput("plate", "You have already registered this plate.", code="unique") from exc


def vehicle_delete(*, vehicle: Vehicle) -> None:
    vehicle.delete()


@transaction.atomic
def invitation_create(*, actor: User, email: str, role: str, is_company_admin: bool = False) -> Invitation:
    """A company admin invites someone; the link is e-mailed and valid for a week."""
    if actor.company is None:
        raise PermissionDenied("Only a company admin invites staff.")
    email = email.strip().lower()
    existing = User.objects.filter(email__iexact=email).first()
    if existing is not None and existing.company_id is not None:
        raise Conflict("This person already belongs to a company.", code="already_member")
    if is_company_admin and role != Role.OPERATOR:
        raise InvalidInput("is_company_admin", "Only operator staff can be company admins.")
    invitation = Invitation.objects.create(
        company=actor.company,
        email=email,
        role=role,
        is_company_admin=is_company_admin,
        invited_by=actor,
        expires_at=clock.now() + INVITATION_VALIDITY,
    )
    audit_record(
        actor=actor,
        action="invitation.create",
        target=invitation,
        before=None,
        after={"email": email, "role": role, "is_company_admin": is_company_admin},
    )
    link = settings.FRONTEND_INVITATION_URL.format(token=invitation.token)
    transaction.on_commit(
        lambda: send_mail(
            subject=f"You are invited to join {invitation.company.name}",
            message=f"{actor.email} invited you to join {invitation.company.name} as {role}.\n\n"
            f"Accept within 7 days: {link}\n(POST the token with a password to /api/v1/auth/invitations/accept)",
            from_email=None,
            recipient_list=[email],
        )
    )
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, password: str | None = None, first_name: str = "", last_name: str = "") -> User:
    """Join the inviting company: a new account, or an existing driver account turned staff."""
    invitation = Invitation.objects.select_for_update().filter(token=token).first()
    now = clock.now()
    if invitation is None or invitation.accepted_at or invitation.revoked_at or invitation.expires_at <= now:
        raise DomainError("This invitation is unknown, used or expired.", code="invitation_invalid")
    user = User.objects.select_for_update().filter(email__iexact=invitation.email).first()
    if user is None:
        if not password:
            raise InvalidInput("password", "A password is required for a new account.", code="required")
        user = User(email=invitation.email, first_name=first_name, last_name=last_name)
        _check_password(password, user)
        user.set_password(password)
    elif user.company_id is not None:
        raise Conflict("This account already belongs to a company.", code="already_member")
    before = _staff_snapshot(user) if user.pk else None
    user.role = invitation.role
    user.company = invitation.company
    user.is_company_admin = invitation.is_company_admin
    user.save()
    invitation.accepted_at = now
    invitation.save(update_fields=["accepted_at"])
    audit_record(
        actor=user,
        action="staff.join",
        target=user,
        before=before,
        after=_staff_snapshot(user),
        company=invitation.company,
    )
    return user


@transaction.atomic
def staff_remove(*, actor: User, member: User) -> User:
    """Remove someone from the company. They keep their account, as a driver."""
    # Lock every admin of the company (in primary-key order, so two removals cannot deadlock)
    # before counting them: two admins removing each other at once must not both succeed.
    if member.company_id is None:
        raise Conflict("This person is not a member of a company.", code="not_a_member")
    admin_ids = list(
        User.objects.select_for_update()
        .filter(company_id=member.company_id, is_company_admin=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    member = User.objects.select_for_update().get(pk=member.pk)
    company: Company | None = member.company
    if member.is_company_admin and not [pk for pk in admin_ids if pk != member.pk]:
        raise Conflict("A company keeps at least one admin.", code="last_company_admin")
    before = _staff_snapshot(member)
    member.role = Role.DRIVER
    member.company = None
    member.is_company_admin = False
    member.save(update_fields=["role", "company", "is_company_admin"])
    audit_record(
        actor=actor, action="staff.remove", target=member, before=before, after=_staff_snapshot(member), company=company
    )
    return member


def password_reset_request(*, email: str) -> None:
    """E-mail a reset link if the account exists; say nothing either way (no account probing)."""
    user = User.objects.filter(email__iexact=email.strip(), is_active=True).first()
    if user is None or not user.has_usable_password():
        return
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    link = settings.FRONTEND_PASSWORD_RESET_URL.format(uid=uid, token=token)
    send_mail(
        subject="Reset your password",
        message=f"Someone asked to reset the password of {user.email}.\n\nChoose a new one: {link}\n"
        f"(or POST uid={uid} and token={token} with new_password to /api/v1/auth/password-reset/confirm)\n\n"
        "If it was not you, ignore this e-mail.",
        from_email=None,
        recipient_list=[user.email],
    )


@transaction.atomic
def password_reset_confirm(*, uid: str, token: str, new_password: str) -> User:
    try:
        user = User.objects.get(pk=int(force_str(urlsafe_base64_decode(uid))))
    except (ValueError, TypeError, OverflowError, User.DoesNotExist) as exc:
        raise DomainError("This reset link is invalid or has expired.", code="reset_token_invalid") from exc
    if not default_token_generator.check_token(user, token):
        raise DomainError("This reset link is invalid or has expired.", code="reset_token_invalid")
    _check_password(new_password, user, field="new_password")
    user.set_password(new_password)
    user.save(update_fields=["password"])
    return user
