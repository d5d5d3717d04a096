"""Accounts and friends over REST: problem JSON for every refusal."""

from __future__ import annotations

import re

import httpx
from support import Gateway, signup, unique_name


async def hashes(http: httpx.AsyncClient, gw: Gateway) -> dict[str, float]:
    """The gateway's argon2id runs so far, by op (duet_gateway_password_hashes_total)."""
    text = (await http.get(f"{gw.http}/metrics")).text
    return {m["op"]: float(m["n"]) for m in re.finditer(
        r'^duet_gateway_password_hashes_total\{op="(?P<op>\w+)"\} (?P<n>\S+)$', text, re.M)}


async def test_register_taken_username_returns_409_without_hashing(gw: Gateway) -> None:
    """A taken username, in any letter case: 409 problem JSON, and argon2 never runs; a
    free one runs it once."""
    async with httpx.AsyncClient() as http:
        u = await signup(http, gw.http)
        before = await hashes(http, gw)
        r = await http.post(f"{gw.http}/api/register",
                            json={"username": u.username.upper(), "password": "another one!"})
        assert await hashes(http, gw) == before
        r2 = await http.post(f"{gw.http}/api/register",
                             json={"username": unique_name(), "password": "another one!"})
        assert r2.status_code == 201
        assert await hashes(http, gw) == {**before, "hash": before["hash"] + 1}
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "conflict"


async def test_register_invalid_body_returns_422_problem(gw: Gateway) -> None:
    """Short passwords, odd usernames and extra fields: 422 with the field named, and no
    password hashed."""
    async with httpx.AsyncClient() as http:
        before = await hashes(http, gw)
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
        assert await hashes(http, gw) == before


async def test_login_bad_password_and_unknown_user_same_answer_unknown_unhashed(
        gw: Gateway) -> None:
    """Wrong password and unknown user: the same 401 problem; the wrong password runs
    argon2 once, the unknown user never (docs/security.md: what the time then reveals)."""
    async with httpx.AsyncClient() as http:
        u = await signup(http, gw.http)

        async def refused(name: str) -> tuple[httpx.Response, dict[str, float]]:
            before = await hashes(http, gw)
            r = await http.post(f"{gw.http}/api/login",
                                json={"username": name, "password": "wrong password"})
            after = await hashes(http, gw)
            return r, {op: after[op] - before[op] for op in after}

        known, known_runs = await refused(u.username)
        unknown, unknown_runs = await refused(unique_name())
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    assert known.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert known_runs == {"hash": 0, "verify": 1}
    assert unknown_runs == {"hash": 0, "verify": 0}


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
                            "revoked": [], "device_list": None}
        r = await http.get(f"{gw.http}/api/users/{unique_name()}", headers=a.auth)
        assert r.status_code == 404
