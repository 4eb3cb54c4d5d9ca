"""Which webhook URLs and addresses are refused, with and without the allowances."""

import pytest

from stageline_shared.webhook_targets import Allowance, TargetRefused, address_refusal, check_url

LOOPBACK: tuple[Allowance, ...] = ("loopback",)
PRIVATE: tuple[Allowance, ...] = ("private",)


@pytest.mark.parametrize("url", [
    "https://crm.example.com/hooks", "http://93.184.216.34:8080/x?y=1", "https://[2606:4700::1]/",
])
def test_public_http_urls_are_accepted(url: str) -> None:
    assert check_url(url, ()) == url


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.com/", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("http:///path", "no host"),
    ("http://user:pw@example.com/", "credentials"),
    ("http://127.0.0.1:9/", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://10.0.0.5/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://0.0.0.0/", "not a unicast"),
    ("http://224.0.0.1/", "not a unicast"),
    ("http://example.com:99999/", "not a valid URL"),
    ("http://exa mple.com/", "spaces or control"),
    ("http://example.com/" + "a" * 3000, "longer than"),
])
def test_refused_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=reason):
        check_url(url, ())


def test_allowances_open_loopback_and_private_but_never_link_local() -> None:
    assert check_url("http://127.0.0.1:9/", LOOPBACK) == "http://127.0.0.1:9/"
    assert check_url("http://localhost/", LOOPBACK) == "http://localhost/"
    with pytest.raises(TargetRefused, match="private"):
        check_url("http://10.0.0.5/", LOOPBACK)
    assert check_url("http://10.0.0.5/", PRIVATE) == "http://10.0.0.5/"
    assert address_refusal("169.254.169.254", (*LOOPBACK, *PRIVATE)) == "169.254.169.254 is a link-local address"
    assert address_refusal("8.8.8.8", ()) is None
