"""Users and friendships over the v1 REST API, for the sockets to authenticate with.

`sign_up_pairs` registers and logs in two users per pair (POST /api/register, /api/login),
then the first asks the second (POST /api/friends) and the second accepts
(POST /api/friends/{id}/accept). `synthetic_pairs` makes users the bench relay accepts
(it trusts any id as its own token) without a gateway.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import httpx

from .stack import BenchError

PASSWORD = "bench-password-" + uuid.uuid4().hex
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    token: str
    username: str = ""


@dataclass(frozen=True, slots=True)
class Pair:
    a: User
    b: User


async def _bounded(jobs: Sequence[Callable[[], Awaitable[T]]], concurrency: int) -> list[T]:
    gate = asyncio.Semaphore(concurrency)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(run(j) for j in jobs)))


def _check(r: httpx.Response, expected: int) -> dict[str, str]:
    if r.status_code != expected:
        raise BenchError(f"{r.request.method} {r.request.url.path} answered "
                         f"{r.status_code}: {r.text[:300]}")
    body: dict[str, str] = r.json()
    return body


async def _sign_up(http: httpx.AsyncClient, base: str, username: str) -> User:
    creds = {"username": username, "password": PASSWORD}
    _check(await http.post(f"{base}/api/register", json=creds), 201)
    token = _check(await http.post(f"{base}/api/login", json=creds), 200)
    return User(token["user_id"], token["access_token"], username)


async def _befriend(http: httpx.AsyncClient, base: str, pair: Pair) -> None:
    a, b = pair.a, pair.b
    _check(await http.post(f"{base}/api/friends", json={"username": b.username},
                           headers={"Authorization": f"Bearer {a.token}"}), 201)
    _check(await http.post(f"{base}/api/friends/{a.user_id}/accept",
                           headers={"Authorization": f"Bearer {b.token}"}), 200)


async def sign_up_pairs(bases: Sequence[str], count: int, *, concurrency: int = 16) -> list[Pair]:
    """`count` pairs of accepted friends; requests spread round-robin over the gateways."""
    stem = f"b{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=30.0) as http:
        users = await _bounded([
            partial(_sign_up, http, bases[i % len(bases)], f"{stem}_{i}")
            for i in range(2 * count)], concurrency)
        pairs = [Pair(users[2 * i], users[2 * i + 1]) for i in range(count)]
        await _bounded([partial(_befriend, http, bases[i % len(bases)], p)
                        for i, p in enumerate(pairs)], concurrency)
    return pairs


def synthetic_pairs(count: int) -> list[Pair]:
    """Pairs of random user ids for the relay, which takes the token to be the user id."""
    def user() -> User:
        uid = os.urandom(12).hex()
        return User(uid, uid)

    return [Pair(user(), user()) for _ in range(count)]
