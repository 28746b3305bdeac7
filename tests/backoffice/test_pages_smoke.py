import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_every_page_renders_for_support(support, shop, make_incident):
    order_id, run_id = shop.failed_checkout()
    incident_id = make_incident(order_id=order_id)
    for url in [
        reverse("backoffice:overview"),
        reverse("backoffice:sagas"),
        reverse("backoffice:order", args=[order_id]),
        reverse("backoffice:incidents"),
        reverse("backoffice:incident", args=[incident_id]),
        reverse("backoffice:search") + "?q=c@example.com",
        reverse("backoffice:states"),
    ]:
        response = support.get(url)
        assert response.status_code == 200, url
