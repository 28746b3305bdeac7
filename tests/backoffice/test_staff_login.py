"""Staff sign-in: brute force is locked out per user and per address (django-axes),
passwords follow every Django validator, sessions are short, and a user with a TOTP
device (django-otp) must give its code; finance must have one when the setting says so."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from backoffice.roles import staff_create

pytestmark = pytest.mark.django_db
LOGIN = "/backoffice/login/"
VERIFY = "/backoffice/login/verify/"
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def finance(db) -> User:
    return staff_create(username="fiona", role="finance", password=PASSWORD)


@pytest.fixture
def support(db) -> User:
    return staff_create(username="sam", role="support", password=PASSWORD)


def _log_in(client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def _logged_in_as(client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).username if user_id else None


def _code(device: TOTPDevice, step_offset: int = 0) -> str:
    return (
        f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=step_offset):06d}"
    )


def test_a_password_brute_force_is_locked_out_even_for_the_right_password(client, finance, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _log_in(client, "fiona", f"guess-{attempt}").status_code == 200
    assert _log_in(client, "fiona", "last-guess").status_code == 429  # the limit-th failure locks

    response = _log_in(client, "fiona", PASSWORD, address="198.51.100.9")  # even from elsewhere

    assert response.status_code == 429
    assert b"Too many failed log-ins" in response.content
    assert _logged_in_as(client) is None


def test_one_address_spraying_many_usernames_is_locked_out(client, finance, support, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        _log_in(client, f"user-{attempt}", "password-spray")

    assert _log_in(client, "sam", PASSWORD).status_code == 429
    assert _logged_in_as(client) is None
    # Another address may still sign in as that user.
    assert _log_in(client, "sam", PASSWORD, address="198.51.100.9").status_code == 302
    assert _logged_in_as(client) == "sam"


def test_the_admin_login_goes_through_the_same_lockout(client, finance, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "fiona", "password": f"guess-{attempt}"})

    response = client.post("/admin/login/", {"username": "fiona", "password": PASSWORD})

    assert response.status_code == 429
    assert _logged_in_as(client) is None


@pytest.mark.parametrize(
    ("password", "why"),
    [("short-pw1", "too short"), ("password1234", "too common"), ("83749201938475", "entirely numeric"),
     ("alice-smith-2024", "too similar")],
)  # fmt: skip
def test_staff_passwords_must_pass_every_django_validator(password, why):
    with pytest.raises(CommandError, match=why):
        call_command("create_staff", "alice-smith", role="support", password=password, stdout=StringIO())
    assert not User.objects.filter(username="alice-smith").exists()


def test_a_staff_session_lasts_a_working_day_at_most_and_ends_with_the_browser(client, support):
    assert _log_in(client, "sam", PASSWORD).status_code == 302
    assert client.session.get_expiry_age() <= 8 * 3600
    assert client.session.get_expire_at_browser_close()
    assert "expires" not in client.cookies["sessionid"].output().lower()


def test_a_user_with_an_authenticator_is_not_logged_in_by_the_password_alone(client, finance):
    device = TOTPDevice.objects.create(user=finance, name="authenticator", confirmed=True)

    response = _log_in(client, "fiona", PASSWORD)

    assert response.status_code == 302 and response["Location"].startswith(VERIFY)
    assert _logged_in_as(client) is None
    assert client.get("/backoffice/finance/").status_code == 302  # still the login page

    wrong = client.post(VERIFY, {"otp_device": device.persistent_id, "otp_token": "000000"})
    assert wrong.status_code == 200 and b"not valid" in wrong.content
    assert _logged_in_as(client) is None

    device.refresh_from_db()
    device.throttling_failure_count = 0  # django-otp delays a device after a failure
    device.throttling_failure_timestamp = None
    device.save()
    right = client.post(
        VERIFY,
        {"otp_device": device.persistent_id, "otp_token": _code(device), "next": "/backoffice/finance/"},
    )
    assert right.status_code == 302 and right["Location"] == "/backoffice/finance/"
    assert _logged_in_as(client) == "fiona"
    assert client.get("/backoffice/finance/").status_code == 200


def test_guessing_codes_counts_towards_the_lockout(client, finance, settings):
    device = TOTPDevice.objects.create(user=finance, name="authenticator", confirmed=True)
    _log_in(client, "fiona", PASSWORD)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post(VERIFY, {"otp_device": device.persistent_id, "otp_token": "123456"})

    assert response.status_code == 429
    assert (
        client.post(VERIFY, {"otp_device": device.persistent_id, "otp_token": _code(device)}).status_code
        == 302
    )
    assert _logged_in_as(client) is None  # the pending sign-in was dropped


def test_the_code_page_without_a_password_step_sends_back_to_the_login(client, finance):
    response = client.post(VERIFY, {"otp_token": "123456"})
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert _logged_in_as(client) is None


def test_an_open_redirect_after_the_code_is_refused(client, finance):
    device = TOTPDevice.objects.create(user=finance, name="authenticator", confirmed=True)
    _log_in(client, "fiona", PASSWORD)
    response = client.post(
        VERIFY,
        {"otp_device": device.persistent_id, "otp_token": _code(device), "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response["Location"] == "/backoffice/"


def test_finance_without_an_authenticator_is_refused_when_required(client, finance, support, settings):
    settings.BACKOFFICE_FINANCE_OTP_REQUIRED = True

    response = _log_in(client, "fiona", PASSWORD)

    assert response.status_code == 200 and b"authenticator code" in response.content
    assert _logged_in_as(client) is None
    # Support is not finance: its password is enough.
    assert _log_in(client, "sam", PASSWORD).status_code == 302


def test_finance_without_an_authenticator_signs_in_when_not_required(client, finance, settings):
    settings.BACKOFFICE_FINANCE_OTP_REQUIRED = False
    assert _log_in(client, "fiona", PASSWORD).status_code == 302
    assert _logged_in_as(client) == "fiona"


def test_otp_enrol_prints_an_otpauth_uri_and_a_qr_code_and_the_code_then_works(client, finance):
    out = StringIO()
    call_command("otp_enrol", "fiona", stdout=out)
    uri = out.getvalue().strip().splitlines()[-1]
    assert uri.startswith("otpauth://totp/") and "issuer=Concord" in uri
    assert "█" in out.getvalue() or "▀" in out.getvalue()  # the QR code, in block characters

    with pytest.raises(CommandError, match="--replace"):
        call_command("otp_enrol", "fiona", stdout=StringIO())
    call_command("otp_enrol", "fiona", "--replace", "--no-qr", stdout=StringIO())
    assert TOTPDevice.objects.filter(user=finance).count() == 1

    with pytest.raises(CommandError, match="no staff user"):
        call_command("otp_enrol", "nobody", stdout=StringIO())
