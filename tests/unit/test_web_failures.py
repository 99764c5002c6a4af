"""What a browser and an API client get when the database is down or a handler fails
(shared.web.endpoint): 503 with Retry-After / 500, never a traceback; a page for browsers."""

import json

from sqlalchemy.exc import OperationalError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.web import endpoint


class Handler:
    @endpoint("test", "/x")
    def database_down(self, request):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    @endpoint("test", "/x")
    def broken(self, request):
        raise RuntimeError("bug with a secret in it: hunter2")


def request(path: str, accept: str) -> Request:
    return Request(EnvironBuilder(path=path, headers={"Accept": accept}).get_environ())


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_database_down_gives_a_browser_an_indonesian_page_with_retry_after():
    response = Handler().database_down(request("/lacak", BROWSER))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert '<html lang="id">' in body and "tidak tersedia" in body
    assert response.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")


def test_database_down_gives_an_api_client_json_with_its_code():
    for path, accept in (("/api/v1/complaints", BROWSER), ("/lacak", "application/json"),
                         ("/lacak", "*/*")):
        response = Handler().database_down(request(path, accept))
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert json.loads(response.get_data())["error"]["code"] == "service_unavailable"


def test_an_unexpected_error_is_a_500_without_its_details():
    page = Handler().broken(request("/", BROWSER))
    api = Handler().broken(request("/api/v1/x", "application/json"))
    assert page.status_code == api.status_code == 500
    assert "hunter2" not in page.get_data(as_text=True) + api.get_data(as_text=True)
    assert json.loads(api.get_data())["error"]["code"] == "internal_error"
