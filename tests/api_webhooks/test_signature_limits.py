"""A signature header with an absurd timestamp is a 400 in the error envelope, not a 500:
int() refuses strings over 4300 digits, and str.isdigit() accepts non-ASCII digits
that int() may still choke on or read as something else."""

import time

import pytest

from payments.models import ProviderWebhookEvent
from payments.webhook_signing import InvalidSignature, verify_signature
from tests.api_webhooks.conftest import charge_event, deliver

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "timestamp",
    ["9" * 5000, "9" * 13, "²", "١٢٣٤٥٦٧٨٩٠", "+1700000000", " 1700000000", "-5"],
    ids=["5000 digits", "13 digits", "superscript", "arabic-indic", "plus sign", "space", "negative"],
)
def test_a_huge_or_non_ascii_timestamp_is_a_400(timestamp):
    response = deliver(charge_event(), header=f"t={timestamp},v1={'0' * 64}")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_signature"
    assert ProviderWebhookEvent.objects.count() == 0


def test_the_verifier_names_the_malformed_timestamp():
    with pytest.raises(InvalidSignature, match="malformed timestamp"):
        verify_signature(b"{}", "t=" + "9" * 5000 + ",v1=00", "whsec_x", now=int(time.time()))
