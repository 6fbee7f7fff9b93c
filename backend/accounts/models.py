"""Accounts: e-mail login, operator companies, roles, drivers' vehicles."""

from __future__ import annotations

import re
import secrets
from typing import Any, ClassVar

from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Company(models.Model):
    """An operator company. Its car parks, staff and loyalty data belong to it alone."""

    name = models.CharField(max_length=200, unique=True)
    country = models.CharField(max_length=2, default="GB", help_text="ISO 3166-1 alpha-2, for public holidays.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    DRIVER = "driver", "Driver"
    OPERATOR = "operator", "Operator staff"
    MARKETING = "marketing", "Marketing"
    PLATFORM_ADMIN = "platform_admin", "Platform admin"


COMPANY_ROLES = (Role.OPERATOR, Role.MARKETING)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields: Any) -> User:
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.update(is_staff=True, is_superuser=True, role=Role.PLATFORM_ADMIN)
        return self._create(email, password, **fields)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username)


class User(AbstractUser):
    """A person. Drivers are platform-wide; operator and marketing staff belong to one company."""

    username = None  # type: ignore[assignment]
    email = models.EmailField("e-mail address", unique=True)
    phone = models.CharField(max_length=32, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.DRIVER)
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.PROTECT, related_name="members")
    is_company_admin = models.BooleanField(default=False, help_text="May invite and remove the company's staff.")

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []
    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
            models.CheckConstraint(
                condition=(Q(role__in=COMPANY_ROLES) & Q(company__isnull=False))
                | (~Q(role__in=COMPANY_ROLES) & Q(company__isnull=True)),
                name="user_company_matches_role",
            ),
            models.CheckConstraint(
                condition=Q(is_company_admin=False) | Q(role=Role.OPERATOR), name="user_company_admin_is_operator"
            ),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_driver(self) -> bool:
        return self.role == Role.DRIVER

    @property
    def is_operator(self) -> bool:
        return self.role == Role.OPERATOR and self.company_id is not None

    @property
    def is_marketing(self) -> bool:
        return self.role == Role.MARKETING and self.company_id is not None

    @property
    def is_platform_admin(self) -> bool:
        return self.role == Role.PLATFORM_ADMIN or self.is_superuser


PLATE_ALLOWED = re.compile(r"^[A-Za-z0-9 \-]+$")
PLATE_NORMALISED = re.compile(r"^[A-Z0-9]{2,10}$")


def normalise_plate(raw: str) -> str:
    """Upper case, no spaces or dashes: ``"ab12 cde"`` -> ``"AB12CDE"``.

    Raises ``ValueError`` for any other character, or a result outside 2-10 characters.
    """
    if not isinstance(raw, str) or not PLATE_ALLOWED.fullmatch(raw):
        raise ValueError("A plate may contain only letters, digits, spaces and dashes.")
    plate = re.sub(r"[ \-]", "", raw).upper()
    if not PLATE_NORMALISED.fullmatch(plate):
        raise ValueError("A plate has 2 to 10 letters and digits.")
    return plate


class Vehicle(models.Model):
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="vehicles")
    plate = models.CharField(max_length=10, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["owner", "plate"], name="vehicle_plate_unique_per_owner")]

    def __str__(self) -> str:
        return self.plate


def _invitation_token() -> str:
    return secrets.token_urlsafe(32)


class Invitation(models.Model):
    """A company admin's invitation for someone to join as operator staff or marketing."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=[(r.value, r.label) for r in COMPANY_ROLES])
    is_company_admin = models.BooleanField(default=False)
    token = models.CharField(max_length=64, unique=True, default=_invitation_token)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} -> {self.company} ({self.role})"
