"""Which server URLs a client talks to: https and wss anywhere, plain http and ws only to
this machine (loopback), unless the caller says `insecure`.

Over plain http the password, the access token and every frame cross the network readable
and changeable by anyone on the path; the envelopes stay sealed, but a token is an account.
Loopback never leaves the machine, so `make run`'s `http://127.0.0.1:8000` needs no flag.
The host is judged as written, never resolved: a name other than `localhost` that a
resolver maps to 127.0.0.1 is still refused (a resolver can be told otherwise).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

from .errors import InsecureServer

PLAIN = ("http", "ws")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) or the name localhost."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def shown(url: str) -> str:
    """The URL without a user:password part, fit to print."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def check_server_url(url: str, *, insecure: bool, flag: str = "insecure=True") -> str:
    """Return url, or raise InsecureServer when it is plain http:// or ws:// to a host that
    is not loopback and `insecure` is not set; `flag` names the way to set it. Other
    schemes are left to the HTTP library, which refuses what it cannot speak."""
    parts = urlsplit(url)
    if parts.scheme.lower() in PLAIN and not insecure and not is_loopback(parts.hostname or ""):
        raise InsecureServer(shown(url), flag)
    return url
