"""Accounts and friends over REST: problem JSON for every refusal."""

from __future__ import annotations

import statistics
import time

import httpx
from support import Gateway, signup, unique_name


async def test_register_taken_username_returns_409(gw: Gateway) -> None:
    """A taken username, in any letter case: 409 problem JSON."""
    async with httpx.AsyncClient() as http:
        u = await signup(http, gw.http)
        r = await http.post(f"{gw.http}/api/register",
                            json={"username": u.username.upper(), "password": "another one!"})
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "conflict"


async def test_register_invalid_body_returns_422_problem(gw: Gateway) -> None:
    """Short passwords, odd usernames and extra fields: 422 with the field named."""
    async with httpx.AsyncClient() as http:
        for body in ({"username": "ab", "password": "long enough"},
                     {"username": "ok_name", "password": "short"},
                     {"username": "ｆｕｌｌwidth", "password": "long enough"},
                     {"username": {"$gt": ""}, "password": "long enough"},
                     {"username": "ok_name2", "password": "long enough", "admin": True}):
            r = await http.post(f"{gw.http}/api/register", json=body)
            assert r.status_code == 422, body
            problem = r.json()
            assert problem["status"] == 422 and problem["code"] == "invalid_request"
            assert problem["detail"]


async def test_login_bad_password_and_unknown_user_same_answer_and_timing(gw: Gateway) -> None:
    """Wrong password and unknown user: the same 401, in about the same time."""
    async with httpx.AsyncClient() as http:
        u = await signup(http, gw.http)

        async def timed(name: str) -> tuple[int, float]:
            t = time.perf_counter()
            r = await http.post(f"{gw.http}/api/login",
                                json={"username": name, "password": "wrong password"})
            return r.status_code, time.perf_counter() - t

        known = [await timed(u.username) for _ in range(5)]
        unknown = [await timed(unique_name()) for _ in range(5)]
    assert {s for s, _ in known + unknown} == {401}
    k, n = statistics.median(t for _, t in known), statistics.median(t for _, t in unknown)
    # The unknown user is verified against a dummy hash: a missing user is not a fast path.
    assert n > k / 3, (k, n)


async def test_friend_request_then_accept_lists_both_sides(gw: Gateway) -> None:
    """Request, see it incoming and outgoing, accept, see it accepted on both sides."""
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        r = await http.post(f"{gw.http}/api/friends", json={"username": b.username},
                            headers=a.auth)
        assert r.status_code == 201 and r.json()["status"] == "outgoing"
        r = await http.get(f"{gw.http}/api/friends", headers=b.auth)
        assert r.json()["friends"] == [
            {"user_id": a.user_id, "username": a.username, "status": "incoming"}]
        r = await http.post(f"{gw.http}/api/friends/{b.user_id}/accept", headers=a.auth)
        assert r.status_code == 404  # only the addressee accepts
        r = await http.post(f"{gw.http}/api/friends/{a.user_id}/accept", headers=b.auth)
        assert r.status_code == 200 and r.json()["status"] == "accepted"
        for me, peer in ((a, b), (b, a)):
            r = await http.get(f"{gw.http}/api/friends", headers=me.auth)
            assert r.json()["friends"] == [
                {"user_id": peer.user_id, "username": peer.username, "status": "accepted"}]


async def test_friend_requests_crossing_become_accepted(gw: Gateway) -> None:
    """If B already asked A, A's request accepts it."""
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await http.post(f"{gw.http}/api/friends", json={"username": a.username}, headers=b.auth)
        r = await http.post(f"{gw.http}/api/friends", json={"username": b.username},
                            headers=a.auth)
        assert r.status_code == 200 and r.json()["status"] == "accepted"


async def test_friend_request_errors_return_problems(gw: Gateway) -> None:
    """Unknown user 404, yourself 409, no token 401."""
    async with httpx.AsyncClient() as http:
        a = await signup(http, gw.http)
        r = await http.post(f"{gw.http}/api/friends", json={"username": unique_name()},
                            headers=a.auth)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        r = await http.post(f"{gw.http}/api/friends", json={"username": a.username},
                            headers=a.auth)
        assert r.status_code == 409
        r = await http.get(f"{gw.http}/api/friends")
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
        r = await http.get(f"{gw.http}/api/friends", headers={"Authorization": "Bearer x.y.z"})
        assert r.status_code == 401


async def test_get_user_returns_public_profile(gw: Gateway) -> None:
    """A user looks another up by name; no hash or secret comes back."""
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        r = await http.get(f"{gw.http}/api/users/{b.username}", headers=a.auth)
        assert r.status_code == 200
        assert r.json() == {"user_id": b.user_id, "username": b.username, "keys": [],
                            "revoked": []}
        r = await http.get(f"{gw.http}/api/users/{unique_name()}", headers=a.auth)
        assert r.status_code == 404
