"""Standard Webhooks verification (exports.webhook_signing): known answer, tampering, time,
malformed input (always a typed WebhookVerificationError, never ValueError/TypeError)."""

import base64
import secrets

import pytest

from exports import webhook_signing as ws
from tests import secrets_registry

# The Standard Webhooks test vector, as Pleo's page shows it (reference, top of the file).
KA_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KA_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
KA_TIMESTAMP = "1614265330"
KA_BODY = b'{"test": 2432232314}'
KA_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
NOW = 1_700_000_000


def new_secret() -> str:
    return secrets_registry.register("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())


@pytest.fixture
def secret():
    return new_secret()


def verify(secret_list, *, msg_id="msg_1", timestamp=str(NOW), signature, body=b"{}", now=NOW):
    return ws.verify(
        secret_list, msg_id=msg_id, timestamp=timestamp, signature=signature, body=body, now=now
    )


def test_known_answer_vector_signs_and_verifies():
    assert ws.sign(KA_SECRET, KA_ID, KA_TIMESTAMP, KA_BODY) == KA_SIGNATURE
    assert (
        ws.verify(
            [KA_SECRET],
            msg_id=KA_ID,
            timestamp=KA_TIMESTAMP,
            signature=KA_SIGNATURE,
            body=KA_BODY,
            now=int(KA_TIMESTAMP) + 10,
        )
        == 1614265330
    )


def test_known_answer_vector_is_stale_today():
    with pytest.raises(ws.TimestampTooOld):
        ws.verify(
            [KA_SECRET], msg_id=KA_ID, timestamp=KA_TIMESTAMP, signature=KA_SIGNATURE, body=KA_BODY
        )


def test_sign_accepts_text_body_and_secret_without_prefix(secret):
    assert ws.sign(secret, "m", 1, "{}") == ws.sign(secret.removeprefix("whsec_"), "m", "1", b"{}")


def test_valid_signature_among_several_entries_and_several_secrets(secret):
    other = new_secret()
    good = ws.sign(secret, "msg_1", NOW, b"{}")
    wrong = ws.sign(other, "msg_1", NOW, b"{}")
    header = f"v2,whatever {wrong} {good}"
    assert verify([other, secret], signature=header) == NOW
    assert verify([secret], signature=header) == NOW


def test_tampered_body_is_rejected(secret):
    signature = ws.sign(secret, "msg_1", NOW, b'{"a": 1}')
    with pytest.raises(ws.SignatureMismatch):
        verify([secret], signature=signature, body=b'{"a": 2}')


@pytest.mark.parametrize("field", ["msg_id", "timestamp"])
def test_tampered_id_or_timestamp_is_rejected(secret, field):
    signature = ws.sign(secret, "msg_1", NOW, b"{}")
    changed = {"msg_id": "msg_2"} if field == "msg_id" else {"timestamp": str(NOW + 1)}
    with pytest.raises(ws.SignatureMismatch):
        verify([secret], signature=signature, **changed)


def test_wrong_secret_is_rejected(secret):
    signature = ws.sign(new_secret(), "msg_1", NOW, b"{}")
    with pytest.raises(ws.SignatureMismatch):
        verify([secret], signature=signature)


@pytest.mark.parametrize(
    ("offset", "error"),
    [(-301, ws.TimestampTooOld), (301, ws.TimestampTooNew), (-3600, ws.TimestampTooOld)],
)
def test_stale_and_future_timestamps_are_rejected(secret, offset, error):
    timestamp = str(NOW + offset)
    signature = ws.sign(secret, "msg_1", timestamp, b"{}")
    with pytest.raises(error):
        verify([secret], timestamp=timestamp, signature=signature)


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_timestamps_at_the_tolerance_edges_pass(secret, offset):
    timestamp = str(NOW + offset)
    signature = ws.sign(secret, "msg_1", timestamp, b"{}")
    assert verify([secret], timestamp=timestamp, signature=signature) == NOW + offset


def test_now_may_be_a_datetime(secret):
    from datetime import UTC, datetime

    signature = ws.sign(secret, "msg_1", NOW, b"{}")
    assert verify([secret], signature=signature, now=datetime.fromtimestamp(NOW, UTC)) == NOW


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("garbage", ws.MalformedSignature),
        ("v1,a,b", ws.MalformedSignature),
        ("v1,!!!notbase64!!!", ws.MalformedSignature),
        ("v1,abc", ws.MalformedSignature),  # bad padding
        ("v1,YWJj", ws.MalformedSignature),  # base64, but not 32 bytes
        ("", ws.MalformedSignature),
        ("   ", ws.MalformedSignature),
        ("v1,", ws.MalformedSignature),
        (",abc", ws.MalformedSignature),
        ("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", ws.NoSupportedSignature),
        ("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=é", ws.MalformedSignature),
        ("v1," + "A" * 5000, ws.MalformedSignature),
        (" ".join(["v2,x"] * 40), ws.MalformedSignature),
        (None, ws.MissingHeader),
    ],
)
def test_malformed_signature_headers_raise_typed_errors(secret, header, error):
    with pytest.raises(error) as caught:
        verify([secret], signature=header)
    assert isinstance(caught.value, ws.WebhookVerificationError)
    assert not isinstance(caught.value, ValueError | TypeError)


@pytest.mark.parametrize(
    "timestamp",
    [
        "abc",
        "16142653.30",
        "-1614265330",
        "+1614265330",
        " 1614265330",
        "1_614_265_330",
        "١٢٣",
        "9" * 40,
    ],
)
def test_non_numeric_timestamps_are_malformed(secret, timestamp):
    signature = ws.sign(secret, "msg_1", NOW, b"{}")
    with pytest.raises(ws.MalformedTimestamp):
        verify([secret], timestamp=timestamp, signature=signature)


@pytest.mark.parametrize(
    ("msg_id", "error"),
    [
        (None, ws.MissingHeader),
        ("", ws.MissingHeader),
        ("msg é", ws.MalformedId),
        ("a b", ws.MalformedId),
        ("m" * 201, ws.MalformedId),
    ],
)
def test_bad_ids_are_rejected(secret, msg_id, error):
    signature = ws.sign(secret, "msg_1", NOW, b"{}")
    with pytest.raises(error):
        verify([secret], msg_id=msg_id, signature=signature)


def test_missing_timestamp(secret):
    with pytest.raises(ws.MissingHeader):
        verify([secret], timestamp=None, signature=ws.sign(secret, "msg_1", NOW, b"{}"))


@pytest.mark.parametrize("bad", [[], ["not-base64!"], ["whsec_"], ["whsec_é"]])
def test_no_usable_secret(bad):
    signature = ws.sign(KA_SECRET, "msg_1", NOW, b"{}")
    with pytest.raises(ws.NoUsableSecret):
        verify(bad, signature=signature)


def test_a_broken_secret_beside_a_good_one_is_skipped(secret):
    signature = ws.sign(secret, "msg_1", NOW, b"{}")
    assert verify(["whsec_!!", secret], signature=signature) == NOW


def test_sign_rejects_a_broken_secret():
    with pytest.raises(ws.InvalidSecret):
        ws.sign("whsec_!!", "m", 1, b"")


def test_error_messages_quote_neither_secret_nor_signature(secret):
    signature = ws.sign(new_secret(), "msg_1", NOW, b"{}")
    secrets_registry.register(signature)
    with pytest.raises(ws.WebhookVerificationError) as caught:
        verify([secret], signature=signature)
    assert secret not in str(caught.value) and signature not in str(caught.value)
