import pytest

from payments.webhook_signing import InvalidSignature, sign_payload, verify_signature

SECRET = "whsec_test"
BODY = b'{"id": "evt_1", "type": "charge.succeeded", "data": {"object": {"amount": 2500}}}'
T = 1_700_000_000


def test_a_fresh_signature_verifies():
    header = sign_payload(BODY, SECRET, T)

    assert header.startswith(f"t={T},v1=")
    verify_signature(BODY, header, SECRET, now=T + 10)


@pytest.mark.parametrize(
    ("body", "header", "secret", "now", "reason"),
    [
        (BODY, sign_payload(BODY, "whsec_other", T), SECRET, T, "signature mismatch"),
        (BODY.replace(b"2500", b"25000"), sign_payload(BODY, SECRET, T), SECRET, T, "signature mismatch"),
        (BODY, sign_payload(BODY, SECRET, T), SECRET, T + 301, "timestamp outside the tolerance"),
        (BODY, sign_payload(BODY, SECRET, T), SECRET, T - 301, "timestamp outside the tolerance"),
        (BODY, sign_payload(BODY, SECRET, T).replace(f"t={T}", f"t={T + 1}"), SECRET, T, "signature mismatch"),
        (BODY, "", SECRET, T, "missing signature header"),
        (BODY, f"v1={'0' * 64}", SECRET, T, "missing or malformed timestamp"),
        (BODY, f"t=abc,v1={'0' * 64}", SECRET, T, "missing or malformed timestamp"),
        (BODY, f"t={T},t={T},v1={'0' * 64}", SECRET, T, "missing or malformed timestamp"),
        (BODY, f"t={T}", SECRET, T, "no v1 signature"),
        (BODY, f"t={T},v0={sign_payload(BODY, SECRET, T).split('v1=')[1]}", SECRET, T, "no v1 signature"),
        (BODY, f"t={T},v1=zzz,v1=é", SECRET, T, "signature mismatch"),
        (BODY, sign_payload(BODY, "", T), "", T, "no webhook secret configured"),
    ],
    ids=["wrong-secret", "altered-body", "stale", "future", "altered-timestamp", "empty", "no-t", "bad-t", "two-t",
         "no-v1", "other-scheme", "garbage-v1", "no-secret"],
)  # fmt: skip
def test_rejections(body, header, secret, now, reason):
    with pytest.raises(InvalidSignature) as caught:
        verify_signature(body, header, secret, now=now)

    assert caught.value.reason == reason


def test_any_of_several_v1_values_may_match():
    good = sign_payload(BODY, SECRET, T).split("v1=")[1]

    verify_signature(BODY, f"t={T},v1={'0' * 64},v1={good}", SECRET, now=T)
    verify_signature(BODY, f" t={T} , v1={good} ", SECRET, now=T)


def test_tolerance_is_configurable_and_defaults_to_five_minutes():
    header = sign_payload(BODY, SECRET, T)

    verify_signature(BODY, header, SECRET, now=T + 300)
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, header, SECRET, now=T + 61, tolerance=60)


def test_now_defaults_to_the_clock():
    import time

    verify_signature(BODY, sign_payload(BODY, SECRET, int(time.time())), SECRET)
    with pytest.raises(InvalidSignature):
        verify_signature(BODY, sign_payload(BODY, SECRET, int(time.time()) - 3600), SECRET)
