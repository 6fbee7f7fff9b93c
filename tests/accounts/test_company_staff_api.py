"""Company staff: admins invite by e-mail, invitees accept with the token, admins list and remove staff."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from backend.accounts.models import Invitation, Role, User
from backend.audit.models import AuditEntry
from tests.factories import PASSWORD, UserFactory

INVITE = "/api/v1/company/invitations"
ACCEPT = "/api/v1/auth/invitations/accept"
STAFF = "/api/v1/company/staff"
NEW_PASSWORD = "plum-orbit-lantern-47"

pytestmark = pytest.mark.django_db


def staff_url(user: User) -> str:
    return f"{STAFF}/{user.pk}"


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    return body


def token_from(message: Any) -> str:
    match = re.search(r"accept\?token=([A-Za-z0-9_-]+)", message.body)
    assert match, message.body
    return match.group(1)


@pytest.fixture
def invite(api, operator, django_capture_on_commit_callbacks):
    """POST an invitation as the company admin, running the on-commit e-mail."""

    def _invite(email: str = "new.mkt@example.test", role: str = "marketing", **extra: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return api(operator).post(INVITE, {"email": email, "role": role, **extra})

    return _invite


def server_errors_as_responses(client: Any) -> Any:
    """Let an unhandled exception come back as the 500 response a real client would get."""
    client.raise_request_exception = False
    return client


def make_invitation(operator: User, **fields: Any) -> Invitation:
    defaults: dict[str, Any] = {
        "company": operator.company,
        "email": "new.mkt@example.test",
        "role": Role.MARKETING,
        "invited_by": operator,
        "expires_at": timezone.now() + timedelta(days=7),
    }
    defaults.update(fields)
    return Invitation.objects.create(**defaults)


# --- invite -----------------------------------------------------------------------------


def test_company_admin_invites_marketing_and_an_email_carries_the_token(invite, operator, company):
    before = timezone.now()

    response = invite("New.Mkt@Example.test", "marketing")

    assert response.status_code == 201, response.json()
    invitation = Invitation.objects.get()
    body = response.json()
    assert set(body) == {"id", "email", "role", "is_company_admin", "created_at", "expires_at", "accepted_at"}
    assert body["id"] == invitation.pk
    assert body["email"] == "new.mkt@example.test"
    assert body["role"] == "marketing"
    assert body["is_company_admin"] is False
    assert body["accepted_at"] is None
    assert "token" not in body
    assert invitation.company == company
    assert invitation.invited_by == operator
    assert timedelta(days=7) <= invitation.expires_at - before < timedelta(days=7, minutes=1)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.mkt@example.test"]
    assert message.subject == "You are invited to join Acme Parking"
    assert token_from(message) == invitation.token
    audit = AuditEntry.objects.get(action="invitation.create")
    assert audit.actor == operator
    assert audit.company == company
    assert audit.after == {"email": "new.mkt@example.test", "role": "marketing", "is_company_admin": False}


def test_invitation_refuses_company_admin_flag_for_marketing(invite):
    response = invite("new.mkt@example.test", "marketing", is_company_admin=True)

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["field"] == "is_company_admin"
    assert Invitation.objects.count() == 0
    assert mail.outbox == []


@pytest.mark.parametrize("role", ["driver", "platform_admin", "boss"])
def test_invitation_refuses_non_company_roles(invite, role):
    response = invite("someone@example.test", role)

    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["role"]
    assert Invitation.objects.count() == 0
    assert mail.outbox == []


def test_invitation_refuses_someone_already_in_a_company(invite, other_operator):
    response = invite("op@rival.test", "marketing")

    assert_problem(response, 409, "already_member")
    assert Invitation.objects.count() == 0
    assert mail.outbox == []


@pytest.mark.parametrize("role", ["operator_staff", "marketing", "driver", "other_driver"])
def test_non_admins_cannot_invite(api, request, role, django_capture_on_commit_callbacks):
    user = request.getfixturevalue(role)

    with django_capture_on_commit_callbacks(execute=True):
        response = api(user).post(INVITE, {"email": "x@example.test", "role": "marketing"})

    assert_problem(response, 403, "permission_denied")
    assert Invitation.objects.count() == 0
    assert mail.outbox == []


def test_anonymous_cannot_invite(anon, company):
    response = anon.post(INVITE, {"email": "x@example.test", "role": "marketing"})

    assert_problem(response, 401, "not_authenticated")
    assert Invitation.objects.count() == 0


def test_invitation_list_shows_only_own_company(api, operator, other_operator):
    mine = make_invitation(operator)
    make_invitation(other_operator, company=other_operator.company, email="theirs@example.test")

    response = api(operator).get(INVITE)

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [mine.pk]


@pytest.mark.parametrize("role", ["operator_staff", "marketing", "driver"])
def test_non_admins_cannot_list_invitations(api, request, operator, role):
    make_invitation(operator)
    user = request.getfixturevalue(role)

    response = api(user).get(INVITE)

    assert_problem(response, 403, "permission_denied")


# --- accept -----------------------------------------------------------------------------


def test_accepting_invitation_creates_marketing_user_of_the_company(invite, anon, company):
    invite("new.mkt@example.test", "marketing")
    token = token_from(mail.outbox[0])

    response = anon.post(ACCEPT, {"token": token, "password": NEW_PASSWORD, "first_name": "Mia"})

    assert response.status_code == 200, response.json()
    user = User.objects.get(email="new.mkt@example.test")
    assert user.role == Role.MARKETING
    assert user.company == company
    assert user.is_company_admin is False
    assert user.first_name == "Mia"
    assert user.check_password(NEW_PASSWORD)
    body = response.json()
    assert body["id"] == user.pk
    assert body["role"] == "marketing"
    assert body["company"] == {"id": company.pk, "name": "Acme Parking", "country": "GB"}
    invitation = Invitation.objects.get()
    assert invitation.accepted_at is not None
    audit = AuditEntry.objects.get(action="staff.join")
    assert audit.before is None
    assert audit.after["role"] == "marketing"
    assert audit.company == company


def test_accepting_invitation_turns_existing_driver_into_staff(operator, driver, company, anon):
    invitation = make_invitation(operator, email="driver@example.test", role=Role.OPERATOR)

    response = anon.post(ACCEPT, {"token": invitation.token, "password": "ignored-for-existing-accounts"})

    assert response.status_code == 200, response.json()
    driver.refresh_from_db()
    assert driver.role == Role.OPERATOR
    assert driver.company == company
    assert driver.check_password(PASSWORD)
    assert User.objects.filter(email="driver@example.test").count() == 1
    audit = AuditEntry.objects.get(action="staff.join")
    assert audit.before["role"] == "driver"
    assert audit.after["role"] == "operator"


def test_existing_driver_accepts_invitation_without_sending_a_password(operator, driver, company, anon):
    invitation = make_invitation(operator, email="driver@example.test", role=Role.OPERATOR)
    client = server_errors_as_responses(anon)

    response = client.post(ACCEPT, {"token": invitation.token})

    assert response.status_code == 200, response.json()
    driver.refresh_from_db()
    assert driver.role == Role.OPERATOR
    assert driver.company == company
    assert User.objects.filter(email="driver@example.test").count() == 1


def test_reusing_an_invitation_token_is_refused(invite, anon, company):
    invite("new.mkt@example.test", "marketing")
    token = token_from(mail.outbox[0])
    assert anon.post(ACCEPT, {"token": token, "password": NEW_PASSWORD}).status_code == 200
    accepted_at = Invitation.objects.get().accepted_at
    users = User.objects.count()

    response = anon.post(ACCEPT, {"token": token, "password": "another-" + NEW_PASSWORD})

    assert_problem(response, 400, "invitation_invalid")
    assert User.objects.count() == users
    assert Invitation.objects.get().accepted_at == accepted_at
    assert User.objects.get(email="new.mkt@example.test").check_password(NEW_PASSWORD)


def test_expired_invitation_is_refused(invite, anon):
    invite("new.mkt@example.test", "marketing")
    token = token_from(mail.outbox[0])
    users = User.objects.count()

    with time_machine.travel(timezone.now() + timedelta(days=7, seconds=1)):
        response = anon.post(ACCEPT, {"token": token, "password": NEW_PASSWORD})

    assert_problem(response, 400, "invitation_invalid")
    assert User.objects.count() == users
    assert not User.objects.filter(email="new.mkt@example.test").exists()
    assert Invitation.objects.get().accepted_at is None


def test_invitation_with_past_expiry_is_refused(operator, anon):
    invitation = make_invitation(operator, expires_at=timezone.now() - timedelta(seconds=1))

    response = anon.post(ACCEPT, {"token": invitation.token, "password": NEW_PASSWORD})

    assert_problem(response, 400, "invitation_invalid")
    assert not User.objects.filter(email="new.mkt@example.test").exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_revoked_invitation_is_refused(operator, anon):
    invitation = make_invitation(operator, revoked_at=timezone.now())

    response = anon.post(ACCEPT, {"token": invitation.token, "password": NEW_PASSWORD})

    assert_problem(response, 400, "invitation_invalid")
    assert not User.objects.filter(email="new.mkt@example.test").exists()


def test_unknown_invitation_token_is_refused(anon, operator):
    users = User.objects.count()

    response = anon.post(ACCEPT, {"token": "no-such-token", "password": NEW_PASSWORD})

    assert_problem(response, 400, "invitation_invalid")
    assert User.objects.count() == users


def test_accepting_for_new_account_refuses_empty_password(operator, anon):
    invitation = make_invitation(operator)

    response = anon.post(ACCEPT, {"token": invitation.token, "password": ""})

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["field"] == "password"
    assert not User.objects.filter(email="new.mkt@example.test").exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_accepting_for_new_account_without_password_is_refused_as_invalid_input(operator, anon):
    invitation = make_invitation(operator)
    client = server_errors_as_responses(anon)

    response = client.post(ACCEPT, {"token": invitation.token})

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["field"] == "password"
    assert not User.objects.filter(email="new.mkt@example.test").exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_accepting_with_weak_password_is_refused_and_token_stays_usable(operator, anon):
    invitation = make_invitation(operator)

    weak = anon.post(ACCEPT, {"token": invitation.token, "password": "password"})

    body = assert_problem(weak, 400, "validation_error")
    assert {error["field"] for error in body["errors"]} == {"password"}
    assert not User.objects.filter(email="new.mkt@example.test").exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None
    assert anon.post(ACCEPT, {"token": invitation.token, "password": NEW_PASSWORD}).status_code == 200


# --- staff list and removal -------------------------------------------------------------


def test_staff_list_shows_only_own_company(api, operator, operator_staff, marketing, other_operator, driver):
    response = api(operator).get(STAFF)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [row["email"] for row in body["results"]] == ["mkt@acme.test", "op@acme.test", "staff@acme.test"]
    assert set(body["results"][0]) == {
        "id",
        "email",
        "first_name",
        "last_name",
        "role",
        "is_company_admin",
        "date_joined",
    }
    by_email = {row["email"]: row for row in body["results"]}
    assert by_email["op@acme.test"]["is_company_admin"] is True
    assert by_email["staff@acme.test"]["role"] == "operator"
    assert by_email["mkt@acme.test"]["role"] == "marketing"


def test_company_admin_removes_member_who_becomes_driver(api, operator, marketing, company):
    response = api(operator).delete(staff_url(marketing))

    assert response.status_code == 204
    marketing.refresh_from_db()
    assert marketing.role == Role.DRIVER
    assert marketing.company is None
    assert marketing.is_company_admin is False
    assert marketing.is_active is True
    audit = AuditEntry.objects.get(action="staff.remove")
    assert audit.actor == operator
    assert audit.actor_email == "op@acme.test"
    assert audit.company == company
    assert audit.object_type == "accounts.user"
    assert audit.object_id == str(marketing.pk)
    assert audit.before == {
        "email": "mkt@acme.test",
        "role": "marketing",
        "company": company.pk,
        "is_company_admin": False,
        "is_active": True,
    }
    assert audit.after == {
        "email": "mkt@acme.test",
        "role": "driver",
        "company": None,
        "is_company_admin": False,
        "is_active": True,
    }


def test_company_admin_removes_another_admin_when_one_remains(api, operator, company):
    second_admin = UserFactory(role=Role.OPERATOR, company=company, is_company_admin=True, email="op2@acme.test")

    response = api(operator).delete(staff_url(second_admin))

    assert response.status_code == 204
    second_admin.refresh_from_db()
    assert second_admin.role == Role.DRIVER
    assert second_admin.is_company_admin is False
    assert AuditEntry.objects.get(action="staff.remove").before["is_company_admin"] is True


def test_removing_another_companys_member_is_not_found(api, operator, other_operator, other_company):
    response = api(operator).delete(staff_url(other_operator))

    assert_problem(response, 404, "not_found")
    other_operator.refresh_from_db()
    assert other_operator.role == Role.OPERATOR
    assert other_operator.company == other_company
    assert other_operator.is_company_admin is True
    assert not AuditEntry.objects.filter(action="staff.remove").exists()


def test_removing_a_driver_is_not_found(api, operator, driver):
    response = api(operator).delete(staff_url(driver))

    assert_problem(response, 404, "not_found")
    driver.refresh_from_db()
    assert driver.role == Role.DRIVER
    assert not AuditEntry.objects.filter(action="staff.remove").exists()


def test_removing_last_company_admin_is_refused(api, operator, operator_staff, company):
    response = api(operator).delete(staff_url(operator))

    assert_problem(response, 409, "last_company_admin")
    operator.refresh_from_db()
    assert operator.role == Role.OPERATOR
    assert operator.company == company
    assert operator.is_company_admin is True
    assert not AuditEntry.objects.filter(action="staff.remove").exists()


@pytest.mark.parametrize("role", ["operator_staff", "marketing", "driver", "other_driver"])
def test_non_admins_cannot_list_or_remove_staff(api, request, operator, operator_staff, marketing, company, role):
    user = request.getfixturevalue(role)
    client = api(user)

    listing = client.get(STAFF)
    removal = client.delete(staff_url(marketing))

    assert_problem(listing, 403, "permission_denied")
    assert_problem(removal, 403, "permission_denied")
    marketing.refresh_from_db()
    assert marketing.role == Role.MARKETING
    assert marketing.company == company
    assert not AuditEntry.objects.filter(action="staff.remove").exists()


def test_anonymous_cannot_list_or_remove_staff(anon, marketing, company):
    assert_problem(anon.get(STAFF), 401, "not_authenticated")
    assert_problem(anon.delete(staff_url(marketing)), 401, "not_authenticated")
    marketing.refresh_from_db()
    assert marketing.company == company


def test_removed_member_loses_staff_access_with_same_token(api, operator, company):
    second_admin = UserFactory(role=Role.OPERATOR, company=company, is_company_admin=True, email="op2@acme.test")
    client = api(second_admin)
    assert client.get(STAFF).status_code == 200

    assert api(operator).delete(staff_url(second_admin)).status_code == 204

    assert_problem(client.get(STAFF), 403, "permission_denied")
