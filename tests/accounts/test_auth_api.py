"""Registration, sign-in, token refresh, the signed-in account, password reset."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from rest_framework.test import APIClient

from backend.accounts.models import Role, User
from tests.factories import PASSWORD

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/token/refresh"
ME = "/api/v1/me"
RESET = "/api/v1/auth/password-reset"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"

NEW_PASSWORD = "plum-orbit-lantern-47"
PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "errors", "request_id"}

pytestmark = pytest.mark.django_db


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"https://parking.example/problems/{code.replace('_', '-')}"
    assert body["request_id"] == response["X-Request-ID"]
    return body


def sign_in(email: str, password: str) -> Any:
    return APIClient().post(TOKEN, {"email": email, "password": password}, format="json")


# --- register ---------------------------------------------------------------------------


def test_register_creates_driver_and_returns_tokens(anon):
    response = anon.post(
        REGISTER,
        {"email": "new.driver@example.test", "password": NEW_PASSWORD, "first_name": "Ada", "last_name": "Byron"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    user = User.objects.get()
    assert body["id"] == user.pk
    assert body["email"] == "new.driver@example.test"
    assert body["role"] == "driver"
    assert body["company"] is None
    assert body["is_company_admin"] is False
    assert body["first_name"] == "Ada"
    assert body["last_name"] == "Byron"
    assert set(body["tokens"]) == {"access", "refresh"}
    assert "password" not in body
    assert user.role == Role.DRIVER
    assert user.company is None
    assert user.check_password(NEW_PASSWORD)


def test_registration_access_token_works_for_me(anon):
    tokens = anon.post(REGISTER, {"email": "ada@example.test", "password": NEW_PASSWORD}, format="json").json()[
        "tokens"
    ]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")

    response = client.get(ME)

    assert response.status_code == 200
    assert response.json()["email"] == "ada@example.test"


def test_register_stores_email_lower_case(anon):
    response = anon.post(REGISTER, {"email": "  Mixed.Case@Example.TEST ", "password": NEW_PASSWORD}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["email"] == "mixed.case@example.test"
    assert User.objects.get().email == "mixed.case@example.test"
    assert sign_in("MIXED.case@example.test", NEW_PASSWORD).status_code == 200


def test_register_refuses_existing_email_in_another_case(anon, driver):
    response = anon.post(REGISTER, {"email": "DRIVER@Example.Test", "password": NEW_PASSWORD}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"][0]["field"] == "email"
    assert body["errors"][0]["code"] == "unique"
    assert User.objects.count() == 1
    driver.refresh_from_db()
    assert driver.check_password(PASSWORD)


@pytest.mark.parametrize(
    "password",
    [
        "password",  # common
        "password123",  # common
        "12345678901",  # entirely numeric
        "short",  # too short
        "weak.person@example.test",  # too similar to the e-mail address
    ],
)
def test_register_refuses_weak_password(anon, password):
    response = anon.post(REGISTER, {"email": "weak.person@example.test", "password": password}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"]
    assert {error["field"] for error in body["errors"]} == {"password"}
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "missing"),
    [
        ({"password": NEW_PASSWORD}, {"email"}),
        ({"email": "a@example.test"}, {"password"}),
        ({}, {"email", "password"}),
    ],
)
def test_register_refuses_missing_fields(anon, payload, missing):
    response = anon.post(REGISTER, payload, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert {error["field"] for error in body["errors"]} == missing
    assert {error["code"] for error in body["errors"]} == {"required"}
    assert User.objects.count() == 0


def test_register_refuses_invalid_email(anon):
    response = anon.post(REGISTER, {"email": "not-an-email", "password": NEW_PASSWORD}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["email"]
    assert User.objects.count() == 0


def test_register_ignores_role_and_company_in_body(anon, company):
    response = anon.post(
        REGISTER,
        {
            "email": "sneaky@example.test",
            "password": NEW_PASSWORD,
            "role": "operator",
            "company": company.pk,
            "is_company_admin": True,
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    user = User.objects.get(email="sneaky@example.test")
    assert user.role == Role.DRIVER
    assert user.company is None
    assert user.is_company_admin is False


def test_register_refuses_malformed_json(anon):
    response = anon.post(REGISTER, data='{"email": "a@example.test", "password": ', content_type="application/json")

    assert_problem(response, 400, "malformed_json")
    assert User.objects.count() == 0


def test_register_refuses_plain_text_body(anon):
    response = anon.post(REGISTER, data="email=a@example.test", content_type="text/plain")

    assert_problem(response, 415, "unsupported_media_type")
    assert User.objects.count() == 0


# --- token and refresh ------------------------------------------------------------------


def test_token_returns_access_and_refresh_for_right_password(driver):
    response = sign_in("driver@example.test", PASSWORD)

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    assert client.get(ME).json()["id"] == driver.pk


def test_token_refuses_wrong_password_with_problem_body(driver):
    response = sign_in("driver@example.test", "not-the-password")

    body = assert_problem(response, 401, "no_active_account")
    assert body["errors"] == []
    driver.refresh_from_db()
    assert driver.last_login is None


def test_token_refuses_unknown_email(db):
    response = sign_in("nobody@example.test", PASSWORD)

    assert_problem(response, 401, "no_active_account")


def test_token_refuses_inactive_account(driver):
    driver.is_active = False
    driver.save()

    response = sign_in("driver@example.test", PASSWORD)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_token_refresh_returns_new_access_token(driver):
    refresh = sign_in("driver@example.test", PASSWORD).json()["refresh"]

    response = APIClient().post(REFRESH, {"refresh": refresh}, format="json")

    assert response.status_code == 200
    assert set(response.json()) == {"access"}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    assert client.get(ME).json()["id"] == driver.pk


def test_token_refresh_refuses_garbage_token(db):
    response = APIClient().post(REFRESH, {"refresh": "not.a.token"}, format="json")

    body = assert_problem(response, 401, "token_not_valid")
    assert "access" not in body


def test_token_refresh_refuses_access_token(driver):
    access = sign_in("driver@example.test", PASSWORD).json()["access"]

    response = APIClient().post(REFRESH, {"refresh": access}, format="json")

    body = assert_problem(response, 401, "token_not_valid")
    assert "access" not in body


# --- me ---------------------------------------------------------------------------------


def test_me_refuses_anonymous_with_problem_body(anon):
    response = anon.get(ME)

    body = assert_problem(response, 401, "not_authenticated")
    assert body["errors"] == []
    assert "Bearer" in response["WWW-Authenticate"]


def test_me_refuses_invalid_bearer_token(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer nonsense")

    response = client.get(ME)

    assert_problem(response, 401, "token_not_valid")


def test_me_returns_driver_account(api, driver):
    response = api(driver).get(ME)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "role",
        "company",
        "is_company_admin",
        "date_joined",
    }
    assert body["id"] == driver.pk
    assert body["email"] == "driver@example.test"
    assert body["role"] == "driver"
    assert body["company"] is None
    assert body["is_company_admin"] is False


def test_me_returns_operator_company(api, operator, company):
    body = api(operator).get(ME).json()

    assert body["role"] == "operator"
    assert body["company"] == {"id": company.pk, "name": "Acme Parking", "country": "GB"}
    assert body["is_company_admin"] is True


def test_me_patch_changes_names_and_phone(api, driver):
    response = api(driver).patch(ME, {"first_name": "Grace", "last_name": "Hopper", "phone": "+44 7700 900123"})

    assert response.status_code == 200
    assert response.json()["first_name"] == "Grace"
    assert response.json()["last_name"] == "Hopper"
    assert response.json()["phone"] == "+44 7700 900123"
    driver.refresh_from_db()
    assert (driver.first_name, driver.last_name, driver.phone) == ("Grace", "Hopper", "+44 7700 900123")


def test_me_patch_ignores_role_email_company_and_admin_flag(api, driver, company):
    response = api(driver).patch(
        ME,
        {
            "first_name": "Grace",
            "role": "operator",
            "email": "hijack@example.test",
            "company": company.pk,
            "is_company_admin": True,
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["first_name"] == "Grace"
    assert body["role"] == "driver"
    assert body["email"] == "driver@example.test"
    assert body["company"] is None
    assert body["is_company_admin"] is False
    driver.refresh_from_db()
    assert driver.first_name == "Grace"
    assert driver.role == Role.DRIVER
    assert driver.email == "driver@example.test"
    assert driver.company is None
    assert driver.is_company_admin is False


def test_me_patch_does_not_move_operator_to_another_company(api, operator, company, other_company):
    response = api(operator).patch(ME, {"company": other_company.pk, "role": "marketing"})

    assert response.status_code == 200
    operator.refresh_from_db()
    assert operator.company == company
    assert operator.role == Role.OPERATOR


def test_me_patch_does_not_change_password(api, driver):
    response = api(driver).patch(ME, {"password": NEW_PASSWORD})

    assert response.status_code == 200
    driver.refresh_from_db()
    assert driver.check_password(PASSWORD)


def test_me_put_is_not_allowed(api, driver):
    response = api(driver).put(ME, {"first_name": "Grace"})

    assert_problem(response, 405, "method_not_allowed")
    driver.refresh_from_db()
    assert driver.first_name == "Test"


def test_me_patch_refuses_anonymous(anon, driver):
    response = anon.patch(ME, {"first_name": "Grace"})

    assert_problem(response, 401, "not_authenticated")
    driver.refresh_from_db()
    assert driver.first_name == "Test"


# --- password reset ---------------------------------------------------------------------


def _uid_and_token(body: str) -> tuple[str, str]:
    match = re.search(r"uid=(\S+) and token=(\S+) with new_password", body)
    assert match, body
    return match.group(1), match.group(2)


def test_password_reset_answers_202_and_mails_only_known_accounts(anon, driver):
    known = anon.post(RESET, {"email": "DRIVER@example.test"}, format="json")
    unknown = anon.post(RESET, {"email": "nobody@example.test"}, format="json")

    assert known.status_code == 202
    assert unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["driver@example.test"]
    assert message.subject == "Reset your password"
    uid, token = _uid_and_token(message.body)
    assert f"/accounts/reset/{uid}/{token}/" in message.body


def test_the_reset_link_opens_a_page_and_no_other_account_page_is_served(anon, driver):
    anon.post(RESET, {"email": "driver@example.test"}, format="json")
    uid, token = _uid_and_token(mail.outbox[0].body)

    page = anon.get(f"/accounts/reset/{uid}/{token}/", follow=True)

    assert page.status_code == 200
    assert b"new_password1" in page.content
    for path in ("/accounts/login/", "/accounts/password_reset/", "/accounts/password_change/"):
        response = anon.get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/problem+json"


def test_password_reset_sends_nothing_for_inactive_account(anon, driver):
    driver.is_active = False
    driver.save()

    response = anon.post(RESET, {"email": "driver@example.test"}, format="json")

    assert response.status_code == 202
    assert mail.outbox == []


def test_password_reset_refuses_invalid_email(anon, driver):
    response = anon.post(RESET, {"email": "not-an-email"}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["email"]
    assert mail.outbox == []


def test_password_reset_confirm_sets_new_password(anon, driver):
    anon.post(RESET, {"email": "driver@example.test"}, format="json")
    uid, token = _uid_and_token(mail.outbox[0].body)

    response = anon.post(RESET_CONFIRM, {"uid": uid, "token": token, "new_password": NEW_PASSWORD}, format="json")

    assert response.status_code == 204
    assert response.content == b""
    assert sign_in("driver@example.test", NEW_PASSWORD).status_code == 200
    assert_problem(sign_in("driver@example.test", PASSWORD), 401, "no_active_account")


def test_password_reset_token_cannot_be_used_twice(anon, driver):
    anon.post(RESET, {"email": "driver@example.test"}, format="json")
    uid, token = _uid_and_token(mail.outbox[0].body)
    first = anon.post(RESET_CONFIRM, {"uid": uid, "token": token, "new_password": NEW_PASSWORD}, format="json")
    assert first.status_code == 204

    second = anon.post(
        RESET_CONFIRM, {"uid": uid, "token": token, "new_password": "other-" + NEW_PASSWORD}, format="json"
    )

    assert_problem(second, 400, "reset_token_invalid")
    driver.refresh_from_db()
    assert driver.check_password(NEW_PASSWORD)


def test_password_reset_confirm_refuses_bad_token(anon, driver):
    anon.post(RESET, {"email": "driver@example.test"}, format="json")
    uid, _token = _uid_and_token(mail.outbox[0].body)

    response = anon.post(
        RESET_CONFIRM, {"uid": uid, "token": "abc-0123456789", "new_password": NEW_PASSWORD}, format="json"
    )

    body = assert_problem(response, 400, "reset_token_invalid")
    assert body["errors"] == []
    driver.refresh_from_db()
    assert driver.check_password(PASSWORD)
    assert not driver.check_password(NEW_PASSWORD)


def test_password_reset_token_does_not_work_for_another_user(anon, driver, other_driver):
    anon.post(RESET, {"email": "driver@example.test"}, format="json")
    anon.post(RESET, {"email": "other.driver@example.test"}, format="json")
    uid, _token = _uid_and_token(mail.outbox[0].body)
    _other_uid, other_token = _uid_and_token(mail.outbox[1].body)

    response = anon.post(RESET_CONFIRM, {"uid": uid, "token": other_token, "new_password": NEW_PASSWORD}, format="json")

    assert_problem(response, 400, "reset_token_invalid")
    driver.refresh_from_db()
    assert driver.check_password(PASSWORD)


@pytest.mark.parametrize("uid", ["!!!", "bm90LWEtbnVtYmVy", "OTk5OTk5"])  # garbage, "not-a-number", "999999"
def test_password_reset_confirm_refuses_bad_uid(anon, driver, uid):
    anon.post(RESET, {"email": "driver@example.test"}, format="json")
    _uid, token = _uid_and_token(mail.outbox[0].body)

    response = anon.post(RESET_CONFIRM, {"uid": uid, "token": token, "new_password": NEW_PASSWORD}, format="json")

    assert_problem(response, 400, "reset_token_invalid")
    driver.refresh_from_db()
    assert driver.check_password(PASSWORD)


def test_password_reset_confirm_refuses_weak_new_password_and_keeps_token_usable(anon, driver):
    anon.post(RESET, {"email": "driver@example.test"}, format="json")
    uid, token = _uid_and_token(mail.outbox[0].body)

    weak = anon.post(RESET_CONFIRM, {"uid": uid, "token": token, "new_password": "password"}, format="json")

    body = assert_problem(weak, 400, "validation_error")
    assert {error["field"] for error in body["errors"]} == {"new_password"}
    driver.refresh_from_db()
    assert driver.check_password(PASSWORD)

    strong = anon.post(RESET_CONFIRM, {"uid": uid, "token": token, "new_password": NEW_PASSWORD}, format="json")
    assert strong.status_code == 204


def test_password_reset_confirm_refuses_missing_fields(anon, driver):
    response = anon.post(RESET_CONFIRM, {}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert {error["field"] for error in body["errors"]} == {"uid", "token", "new_password"}
    driver.refresh_from_db()
    assert driver.check_password(PASSWORD)
