"""Our Standard Webhooks signatures, checked by the standardwebhooks package's own verifier; the
sender's address check."""

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from stageline_api.webhook_store import new_secret
from stageline_dispatcher.sender import literal_refusal
from stageline_dispatcher.signing import signature
from stageline_shared.webhook_targets import Allowance

LOOPBACK: tuple[Allowance, ...] = ("loopback",)


def _headers(secrets: list[str], body: bytes, message_id: str = "msg_1") -> dict[str, str]:
    timestamp = int(time.time())
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secrets, message_id, timestamp, body)}


def test_a_signature_verifies_with_the_secret_and_not_with_another() -> None:
    secret, other = new_secret(), new_secret()
    body = b'{"type":"customer.stage_changed","data":{"position":1}}'
    headers = _headers([secret], body)
    assert Webhook(secret).verify(body, headers) == {"type": "customer.stage_changed",
                                                     "data": {"position": 1}}
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


def test_during_a_rotation_both_secrets_verify() -> None:
    new, old = new_secret(), new_secret()
    body = b'{"a":1}'
    headers = _headers([new, old], body)
    assert headers["webhook-signature"].count("v1,") == 2
    assert Webhook(new).verify(body, headers) == {"a": 1}
    assert Webhook(old).verify(body, headers) == {"a": 1}


def test_a_changed_body_or_id_fails_verification() -> None:
    secret = new_secret()
    headers = _headers([secret], b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":1}', headers | {"webhook-id": "msg_2"})


def test_secrets_are_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret != new_secret()


def test_literal_addresses_are_checked_before_dialling() -> None:
    """aiohttp never asks the resolver about a literal address: the sender checks those itself."""
    assert literal_refusal("http://127.0.0.1:9/hook", ()) == \
        "refused to connect to 127.0.0.1: 127.0.0.1 is a loopback address"
    assert literal_refusal("http://[::1]/hook", ()) is not None
    assert literal_refusal("http://127.0.0.1:9/hook", LOOPBACK) is None
    assert literal_refusal("http://169.254.169.254/", (*LOOPBACK, "private")) is not None
    assert literal_refusal("https://crm.example.com/hook", ()) is None  # the resolver's job
