"""TLS: the gateway serves https and wss with a certificate from gateway.certs."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import orjson
from support import Stack, befriend, envelope, signup
from websockets.asyncio.client import connect

from gateway.certs import make


async def test_gateway_with_certificate_serves_https_and_wss(stack: Stack,
                                                             tmp_path: Path) -> None:
    """With DUET_TLS_CERT/KEY the gateway answers https and wss, verified against the
    development CA; a plain-text client gets nothing."""
    paths = make(tmp_path / "tls", ["localhost", "127.0.0.1"])
    context = ssl.create_default_context(cafile=str(paths["ca"]))
    gw = stack.gateway(DUET_TLS_CERT=str(paths["cert"]), DUET_TLS_KEY=str(paths["key"]),
                       _scheme="https", _verify=context)
    base = f"https://127.0.0.1:{gw.port}"
    async with httpx.AsyncClient(verify=context) as http:
        a, b = await signup(http, base), await signup(http, base)
        await befriend(http, base, a, b)
    async with connect(f"wss://127.0.0.1:{gw.port}/ws/{b.user_id}", ssl=context,
                       additional_headers=a.auth) as ws:
        assert '"ready"' in await ws.recv()
        await ws.send(orjson.dumps(
            {"type": "send", "id": "tls1", "kind": "text", "body": envelope(a, b)}).decode())
        assert '"ack"' in await ws.recv()
    async with httpx.AsyncClient() as plain:
        try:
            r = await plain.get(f"http://127.0.0.1:{gw.port}/healthz", timeout=3)
            assert r.status_code >= 400
        except httpx.HTTPError:
            pass  # refused at the TLS layer: also fine
