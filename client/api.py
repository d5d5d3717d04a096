"""The REST half of the v1 contract, over httpx."""

from __future__ import annotations

from typing import Any

import httpx

from .errors import ApiError

USER_AGENT = "duet Python client"


class Api:
    def __init__(self, base_url: str, *, timeout: float = 15.0, verify: Any = True) -> None:
        self.base_url = base_url.rstrip("/")
        # The User-Agent labels this login in the user's list of sessions.
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, verify=verify,
                                       headers={"User-Agent": USER_AGENT})
        self.token: str | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, json: Any = None,
                   params: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        r = await self._http.request(method, path, json=json, params=params, headers=headers)
        if r.status_code >= 400:
            try:
                p = r.json()
                raise ApiError(r.status_code, str(p.get("code", "error")),
                               str(p.get("detail", r.text)))
            except ValueError:
                raise ApiError(r.status_code, "http_error", r.text[:200]) from None
        return r.json() if r.content else None

    async def register(self, username: str, password: str) -> dict[str, Any]:
        return dict(await self.call("POST", "/api/register",
                                    {"username": username, "password": password}))

    async def login(self, username: str, password: str) -> dict[str, Any]:
        token = dict(await self.call("POST", "/api/login",
                                     {"username": username, "password": password}))
        self.token = token["access_token"]
        return token

    async def user(self, username: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/api/users/{username}"))

    async def publish_keys(self, devices: list[dict[str, str | None]]) -> dict[str, Any]:
        return dict(await self.call("PUT", "/api/keys", {"keys": devices}))

    async def prekey_stock(self) -> list[dict[str, Any]]:
        return list(await self.call("GET", "/api/prekeys"))

    async def publish_prekeys(self, upload: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.call("PUT", "/api/prekeys", upload))

    async def claim_prekeys(self, user_id: str, kids: list[str]) -> list[dict[str, Any]]:
        found = await self.call("GET", f"/api/prekeys/{user_id}",
                                params={"devices": ",".join(kids)})
        return list(found["devices"])

    async def revoke_key(self, kid: str) -> None:
        await self.call("DELETE", f"/api/keys/{kid}")

    async def friends(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/api/friends"))["friends"])

    async def request_friend(self, username: str) -> dict[str, Any]:
        return dict(await self.call("POST", "/api/friends", {"username": username}))

    async def accept_friend(self, user_id: str) -> dict[str, Any]:
        return dict(await self.call("POST", f"/api/friends/{user_id}/accept"))

    async def messages(self, peer_id: str, *, after: str | None = None,
                       before: str | None = None, limit: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        if before:
            params["before"] = before
        return dict(await self.call("GET", f"/api/rooms/{peer_id}/messages", params=params))

    # -- sessions (every token names one; docs/protocol.md "Sessions") ----------------
    async def sessions(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/api/sessions"))["sessions"])

    async def revoke_session(self, session_id: str) -> None:
        await self.call("DELETE", f"/api/sessions/{session_id}")

    async def logout(self, *, everywhere: bool = False) -> None:
        """End this token's session (with everywhere, every session of the user)."""
        await self.call("POST", "/api/logout",
                        params={"everywhere": "true"} if everywhere else None)
        self.token = None

    async def renew(self) -> dict[str, Any]:
        """A fresh token for the same session, whose expiry moves forward."""
        token = dict(await self.call("POST", "/api/sessions/renew"))
        self.token = token["access_token"]
        return token

    async def change_password(self, current: str, new: str) -> None:
        """Ends every other session of the user; this one stays."""
        await self.call("POST", "/api/password", {"current": current, "new": new})
