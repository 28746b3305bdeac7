"""Production settings fail closed: a default, missing or short secret, the sandbox as
provider, or a missing host list stops the process with a message naming the setting;
the entry points never fall back to DEBUG settings; `check --deploy` is clean."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A realistic production environment: every required setting given, nothing default.
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "q8Zr-5mT2v_Lw9xK3pNa7YcE1sUfH6dJ0gB4oRiVtMz$WnQe%yP",
    "ALLOWED_HOSTS": "concord.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://concord.example.com",
    "PSP_BASE_URL": "https://api.psp.example.com",
    "PSP_API_KEY": "sk_live_51HxQ2mT9vLw3xK7pNa1YcE5sUfH8dJ4gB6oRiVtMzWnQeyP",
    "PSP_WEBHOOK_SECRET": "whsec_Kd83mQ0vZx7LpR2tNw9YcE4sUfH1aJ6gB5oXiVyMz",
}
OWN_VARIABLES = {*PRODUCTION_ENV, "PSP_ALLOW_SANDBOX", "DJANGO_SETTINGS_MODULE"}


def _environment(settings_module: str | None, **overrides: str) -> dict[str, str]:
    # No DJANGO_* from the suite either (the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE).
    env = {k: v for k, v in os.environ.items() if k not in OWN_VARIABLES and not k.startswith("DJANGO_")}
    env.update(overrides)
    if settings_module:
        env["DJANGO_SETTINGS_MODULE"] = settings_module
    return env


def _run(args: list[str], settings_module: str | None, **overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=ROOT,
        env=_environment(settings_module, **overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _import_production(**overrides: str) -> subprocess.CompletedProcess:
    return _run(
        [sys.executable, "-c", "import django; django.setup()"], "config.settings.production", **overrides
    )


def _without(name: str) -> dict[str, str]:
    return {k: v for k, v in PRODUCTION_ENV.items() if k != name}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({**PRODUCTION_ENV, "DEBUG": "true"}, "DEBUG must be off"),
        (_without("SECRET_KEY"), "SECRET_KEY"),
        ({**PRODUCTION_ENV, "SECRET_KEY": "insecure-dev-key-change-me"}, "SECRET_KEY"),
        ({**PRODUCTION_ENV, "SECRET_KEY": "k" * 60}, "SECRET_KEY"),
        (_without("ALLOWED_HOSTS"), "ALLOWED_HOSTS"),
        ({**PRODUCTION_ENV, "ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS"),
        # Anyone who knows the public development webhook secret can sign a charge.succeeded.
        (_without("PSP_WEBHOOK_SECRET"), "PSP_WEBHOOK_SECRET"),
        ({**PRODUCTION_ENV, "PSP_WEBHOOK_SECRET": "whsec_concord_dev"}, "PSP_WEBHOOK_SECRET"),
        ({**PRODUCTION_ENV, "PSP_WEBHOOK_SECRET": "whsec_short"}, "PSP_WEBHOOK_SECRET"),
        ({**PRODUCTION_ENV, "PSP_WEBHOOK_SECRET": ""}, "PSP_WEBHOOK_SECRET"),
        ({**PRODUCTION_ENV, "PSP_WEBHOOK_SECRET": "w" * 40}, "PSP_WEBHOOK_SECRET"),
        (_without("PSP_API_KEY"), "PSP_API_KEY"),
        ({**PRODUCTION_ENV, "PSP_API_KEY": "sk_test_concord"}, "PSP_API_KEY"),
        ({**PRODUCTION_ENV, "PSP_API_KEY": "sk_live_short"}, "PSP_API_KEY"),
        # The sandbox (or any loopback / plain-HTTP provider) is refused unless allowed.
        (_without("PSP_BASE_URL"), "PSP_BASE_URL"),
        ({**PRODUCTION_ENV, "PSP_BASE_URL": "https://127.0.0.1:8010"}, "PSP_BASE_URL"),
        ({**PRODUCTION_ENV, "PSP_BASE_URL": "https://localhost"}, "PSP_BASE_URL"),
        ({**PRODUCTION_ENV, "PSP_BASE_URL": "https://[::1]:8010"}, "PSP_BASE_URL"),
        ({**PRODUCTION_ENV, "PSP_BASE_URL": "http://api.psp.example.com"}, "PSP_BASE_URL"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_production_settings_refuse_unsafe_configuration(env, message):
    result = _import_production(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


def test_production_settings_start_with_a_real_configuration():
    result = _import_production(**PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr


def test_the_sandbox_provider_is_accepted_only_when_allowed_explicitly():
    sandbox = {**PRODUCTION_ENV, "PSP_BASE_URL": "http://127.0.0.1:8010"}
    assert _import_production(**sandbox).returncode != 0
    result = _import_production(**sandbox, PSP_ALLOW_SANDBOX="true")
    assert result.returncode == 0, result.stderr


def test_check_deploy_passes_with_no_warnings():
    result = _run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        "config.settings.production",
        **PRODUCTION_ENV,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr
    assert "WARNING" not in result.stderr


def test_production_turns_on_https_hardening_and_a_csp():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS >= 31536000, s.SECURE_PROXY_SSL_HEADER, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.CSRF_TRUSTED_ORIGINS, "
        "s.CONTENT_SECURITY_POLICY['DIRECTIVES']['script-src'], s.BACKOFFICE_FINANCE_OTP_REQUIRED)"
    )
    result = _run([sys.executable, "-c", code], "config.settings.production", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "True True ('HTTP_X_FORWARDED_PROTO', 'https') True True ['https://concord.example.com'] "
        "[\"'self'\"] True"
    )


def test_production_keeps_database_connections_between_requests_and_tasks():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "d = s.DATABASES['default']; print(d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'])"
    )
    kept = _run([sys.executable, "-c", code], "config.settings.production", **PRODUCTION_ENV)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip() == "60 True"
    fresh = _run(
        [sys.executable, "-c", code], "config.settings.production", **PRODUCTION_ENV, CONN_MAX_AGE="0"
    )
    assert fresh.stdout.strip() == "0 True"


@pytest.mark.parametrize(
    "entry",
    [
        ["-c", "import config.wsgi"],
        ["-c", "from config.celery_app import app; app.loader.import_default_modules()"],
        ["manage.py", "check"],
    ],
    ids=["wsgi", "celery", "manage.py"],
)
def test_entry_points_without_a_settings_module_fail_closed(entry):
    # Development defaults in the environment, no DJANGO_SETTINGS_MODULE: production
    # settings load and refuse, instead of DEBUG settings serving.
    result = _run([sys.executable, *entry], None)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


def test_entry_points_without_a_settings_module_run_production_when_configured():
    code = "import config.wsgi; from django.conf import settings; print(settings.DEBUG)"
    result = _run([sys.executable, "-c", code], None, **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
