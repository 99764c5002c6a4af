"""Which address rate limits and sign-in throttling count against (shared.web.client_address)."""

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.web import client_address


def request(forwarded_for: str | None = None) -> Request:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    builder = EnvironBuilder(headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    return Request(builder.get_environ())


def test_without_a_trusted_proxy_the_peer_address_counts_whatever_the_headers_say():
    assert client_address(request("203.0.113.7"), trust_proxy=False) == "10.0.0.9"


def test_behind_the_proxy_the_address_it_appended_counts():
    assert client_address(request("203.0.113.7"), trust_proxy=True) == "203.0.113.7"


def test_a_forged_first_entry_does_not_dodge_the_limit():
    # nginx appends the real peer ($proxy_add_x_forwarded_for); the client controls the rest.
    forged = request("198.51.100.1, 198.51.100.2, 203.0.113.7")
    assert client_address(forged, trust_proxy=True) == "203.0.113.7"


def test_behind_the_proxy_without_the_header_falls_back_to_the_peer():
    assert client_address(request(), trust_proxy=True) == "10.0.0.9"
    assert client_address(request(" , "), trust_proxy=True) == "10.0.0.9"
