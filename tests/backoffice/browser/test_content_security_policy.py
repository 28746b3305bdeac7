"""Every page is served with a Content-Security-Policy and renders in Chromium without a
single refusal: the back office (SVG chart and state graphs included), the login and
code pages, the admin and the API docs. The `page` fixture fails a test on any
refusal the console reports; this test also listens for the DOM's violation events."""

from __future__ import annotations

import pytest

from backoffice.roles import staff_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LISTEN = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""
BACKOFFICE_PAGES = ["/backoffice/", "/backoffice/sagas/", "/backoffice/incidents/", "/backoffice/approvals/",
                    "/backoffice/finance/", "/backoffice/states/", "/backoffice/search/?q=1"]  # fmt: skip
ADMIN_PAGES = [
    "/admin/",
    "/admin/orders/order/",
    "/admin/apitokens/apitoken/",
    "/admin/otp_totp/totpdevice/add/",
]


def _visit(page, url: str) -> None:
    response = page.goto(url)
    assert response.status < 400, url
    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "script-src 'self'" in policy, (url, policy)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__csp") == [], url


def test_pages_carry_a_csp_and_the_browser_refuses_nothing(page, live_server, log_in, django_user_model):
    page.context.add_init_script(LISTEN)
    staff_create(username="fay", role="finance", password="finance-pass-1")
    django_user_model.objects.create_superuser("root", password="root-pass-123")

    _visit(page, f"{live_server.url}/backoffice/login/")
    log_in(page, "fay", "finance-pass-1")
    for path in BACKOFFICE_PAGES:
        _visit(page, f"{live_server.url}{path}")
        if path in {"/backoffice/finance/", "/backoffice/states/"}:
            assert page.locator("main svg").count() > 0, path  # charts and state graphs drew

    page.context.clear_cookies()
    log_in(page, "root", "root-pass-123")
    for path in ADMIN_PAGES:
        _visit(page, f"{live_server.url}{path}")
    _visit(page, f"{live_server.url}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15_000)  # the docs rendered

    assert page.csp_violations == []
