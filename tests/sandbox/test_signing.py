"""Standard Webhooks signing: the known-answer vector from Pleo's page, and verification."""

import base64
import random

import pytest

from pleo_sandbox.signing import new_message_id, new_secret, sign, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = '{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature=EXPECTED, msg_id=MSG_ID, timestamp=TIMESTAMP):
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_known_answer_vector():
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == EXPECTED
    assert sign(SECRET, MSG_ID, str(TIMESTAMP), BODY.encode()) == EXPECTED


def test_verify_accepts_the_vector_within_tolerance():
    assert verify(SECRET, headers(), BODY, now=TIMESTAMP + 299)
    # Header names are case-insensitive.
    upper = {k.upper(): v for k, v in headers().items()}
    assert verify(SECRET, upper, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    "change",
    ["body", "secret", "msg_id", "stale", "future", "version", "missing"],
)
def test_verify_rejects_tampering(change):
    secret, body, hdrs, now = SECRET, BODY, headers(), TIMESTAMP
    if change == "body":
        body = '{"test": 2432232315}'
    elif change == "secret":
        secret = "whsec_" + base64.b64encode(b"x" * 24).decode()
    elif change == "msg_id":
        hdrs = headers(msg_id="msg_other")
    elif change == "stale":
        now = TIMESTAMP + 301
    elif change == "future":
        now = TIMESTAMP - 301
    elif change == "version":
        hdrs = headers(signature=EXPECTED.replace("v1,", "v2,"))
    elif change == "missing":
        hdrs = {k: v for k, v in headers().items() if k != "webhook-signature"}
    assert not verify(secret, hdrs, body, now=now)


def test_verify_accepts_one_good_signature_among_several():
    several = f"v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {EXPECTED}"
    assert verify(SECRET, headers(signature=several), BODY, now=TIMESTAMP)


def test_new_secret_and_message_id_shapes():
    rng = random.Random(3)
    secret = new_secret(rng)
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    msg_id = new_message_id(rng)
    assert msg_id.startswith("msg_") and len(msg_id) == 31 and msg_id[4:].isalnum()
    # A fresh secret signs and verifies round trip.
    sig = sign(secret, msg_id, 1700000000, b"{}")
    assert verify(secret, headers(sig, msg_id, 1700000000), b"{}", now=1700000000)
