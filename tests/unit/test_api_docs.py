"""The gateway serves its OpenAPI document and page only when DUET_API_DOCS is set."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings

pytestmark = pytest.mark.timeout(60)

DOCS = ("/api/docs", "/api/openapi.json")


def client(**settings: Any) -> httpx.AsyncClient:
    """An HTTP client of a gateway app in process (no lifespan: these paths need none)."""
    app = create_app(GatewaySettings(token_secret="s" * 40, **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def test_api_docs_setting_off_by_default() -> None:
    """GatewaySettings.api_docs is False unless DUET_API_DOCS says otherwise."""
    assert GatewaySettings(token_secret="s" * 40).api_docs is False


@pytest.mark.parametrize("web_dir", [None, "default"])
async def test_get_api_docs_not_found_when_off(web_dir: str | None) -> None:
    """Off, /api/docs and /api/openapi.json answer 404 problem JSON, with the web client
    served at / or not."""
    settings = {} if web_dir == "default" else {"web_dir": None}
    async with client(**settings) as http:
        for path in DOCS:
            r = await http.get(path)
            assert r.status_code == 404, (path, r.text[:200])
            assert r.headers["content-type"] == "application/problem+json", path
            assert r.json()["code"] == "not_found"


async def test_get_api_docs_served_when_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """DUET_API_DOCS=true serves the OpenAPI document (naming the REST calls) and its page."""
    monkeypatch.setenv("DUET_API_DOCS", "true")
    async with client() as http:
        schema = await http.get("/api/openapi.json")
        assert schema.status_code == 200
        assert "/api/login" in schema.json()["paths"]
        page = await http.get("/api/docs")
        assert page.status_code == 200 and "/api/openapi.json" in page.text
