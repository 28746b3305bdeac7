"""The overview counts what waits for a person, from the partial indexes (not a scan of
every run), and says whether the provider answers."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_overview_counts_failed_runs_and_sees_the_provider(support, shop):
    shop.failed_checkout()
    shop.failed_checkout(email="other@example.com")
    shop.confirmed()  # completed: not counted

    page = support.get(reverse("backoffice:overview")).content.decode()

    assert "2 <small>failed</small>" in page
    assert "0 <small>compensation failed</small>" in page
    assert "0 <small>running past their SLA</small>" in page
    assert (
        '<li data-pulse="provider"><strong>Provider:</strong> <span class="badge completed">ok</span>' in page
    )  # the sandbox
