"""URLs that are not UTF-8 once percent-decoded are found, and only those."""

import pytest

from stageline_shared.urls import undecodable_at


@pytest.mark.parametrize("raw", [
    b"", b"/v1/customers/c-1", b"/v1/customers/a%2Fb", b"limit=2&cursor=WyIy", b"%00", b"%7F",
    b"/v1/customers/%C3%BC", b"%F0%9F%98%80", b"%EF%BF%BD", b"%25ff", b"100%", b"%zz",
])
def test_utf8_urls_pass(raw: bytes) -> None:
    assert undecodable_at(raw) is None


@pytest.mark.parametrize(("raw", "at"), [
    (b"/v1/customers/%ff", 14),
    (b"a%C3", 1),  # cut short
    (b"%C0%AF", 0),  # overlong "/"
    (b"x=%ED%A0%80", 2),  # a surrogate, encoded
    (b"%F4%90%80%80", 0),  # past U+10FFFF
    (b"/v1/\xff", 4),  # a raw byte, should a server pass one on
])
def test_undecodable_urls_are_found(raw: bytes, at: int) -> None:
    assert undecodable_at(raw) == at
