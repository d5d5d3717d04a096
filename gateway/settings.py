"""The gateway's settings: one pydantic-settings class, built once in main()."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from service.settings import ServiceSettings

_PLACEHOLDERS = {"changeme", "change-me", "secret", "changethis", "please-change-me"}


class GatewaySettings(ServiceSettings):
    host: str = "127.0.0.1"
    port: int = 8000
    node: str = Field(default_factory=lambda: secrets.token_hex(4),
                      description="Replica id; names this replica's queue.")
    token_secret: SecretStr | None = None
    token_secret_file: Path | None = None
    token_secrets_previous: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Older signing secrets, comma-separated: tokens they signed stay valid "
                    "until they expire (key rotation without logging anyone out).")
    token_secrets_previous_file: Path | None = Field(
        None, description="A file holding the older signing secrets (comma- or "
                          "line-separated; may be empty), instead of the variable.")
    token_ttl_s: int = Field(12 * 3600, ge=60)
    session_cache_s: float = Field(
        0.0, ge=0, le=30, description="How long a gateway trusts that a session is live "
                                      "before asking MongoDB again; 0: on every request.")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_frame_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_rest_bytes: int = Field(64 * 1024, ge=1024, description="Largest REST request body.")
    max_text_bytes: int = Field(64 * 1024, ge=1, description="Largest text plaintext.")
    max_image_bytes: int = Field(5 * 1024 * 1024, ge=1, description="Largest image plaintext.")
    outbox_frames: int = Field(
        1024, ge=16, description="Frames queued per socket before it is closed.")
    outbox_bytes: int = Field(
        16 * 1024 * 1024, ge=64 * 1024,
        description="Bytes queued per socket: a live frame past it closes the socket "
                    "(too_far_behind), a replay waits for the socket to drain (one frame "
                    "always fits).")
    max_read_bytes: int = Field(
        16 * 1024 * 1024, ge=64 * 1024,
        description="Stored bytes one read holds at once: a history page, or one batch of "
                    "a sync replay (at least one message, however large).")
    publish_timeout_s: float = Field(5.0, gt=0)
    max_in_flight: int = Field(
        32, ge=1, description="Messages a socket may have awaiting the broker's confirm; "
                               "at the limit the gateway stops reading from it.")
    publish_batch: int = Field(
        64, ge=1, description="Most messages in one broker message (also at most 1 MiB).")
    publish_in_flight: int = Field(
        1, ge=1, description="Broker messages this gateway may have awaiting their confirm; "
                              "what is sent meanwhile waits and leaves as one.")
    publish_interval_ms: float = Field(
        5.0, ge=0, le=1000, description="Least time between the starts of two publishes of "
                                         "this gateway; what is sent meanwhile waits and "
                                         "leaves as one (0: no wait beyond the confirm).")
    history_max_limit: int = Field(500, ge=1)
    web_dir: Path | None = Field(
        default=Path(__file__).resolve().parent.parent / "web",
        description="The browser client's files, served at /; empty to serve none.")

    @field_validator("web_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # pydantic reads "" as Path("."): the working directory would be served at /.
        return None if isinstance(value, str) and not value.strip() else value
    ws_impl: Literal["websockets-sansio", "websockets", "wsproto"] = Field(
        "websockets-sansio", description="uvicorn's WebSocket implementation.")
    handshake_timeout_s: float = Field(
        10.0, gt=0, description="A connection must send its request headers within this.")
    rate_per_s: float = Field(100.0, gt=0, description="Frames a socket may send per second.")
    rate_burst: float = Field(500.0, ge=1, description="Frames a socket may send at once.")
    typing_per_s: float = Field(
        1.0, gt=0, description="Typing signals a device socket may send per second.")
    typing_burst: float = Field(3.0, ge=1, description="Typing signals it may send at once.")
    presence_ttl_s: float = Field(
        6.0, ge=1, le=60, description="A gateway that stops refreshing its users' presence "
                                      "(it died) has them shown offline this long after, "
                                      "plus a sixth of it at most.")
    max_connections_per_ip: int = Field(100, ge=1)
    login_failures_per_user: int = Field(
        10, ge=1, description="Failed logins per (user, client address) per 15 minutes.")
    login_failures_per_ip: int = Field(
        50, ge=1, description="Failed logins per client address per 15 minutes before "
                              "its growing delay.")
    registrations_per_ip: int = Field(
        100, ge=1, description="Registrations per client address per hour before its "
                               "growing delay.")
    backoff_max_s: float = Field(
        900.0, ge=1, description="Longest delay an address's login or registration "
                                 "back-off grows to.")
    max_sockets_per_user: int = Field(
        50, ge=1, description="Open sockets per user, all gateways together.")
    messages_per_minute: int = Field(
        6000, ge=1, description="Messages (text, image) a user may send per UTC minute, "
                                "all gateways together.")
    bytes_per_day: int = Field(
        4 * 1024 ** 3, ge=1024, description="Ciphertext bytes a user may send per UTC day, "
                                            "all gateways together.")
    friend_requests_per_day: int = Field(
        50, ge=1, description="Friend requests a user may make per UTC day, counted across "
                              "gateways in MongoDB; more are refused with 429.")
    forwarded_allow_ips: str = Field(
        "127.0.0.1", description="Proxies whose X-Forwarded-For names the client address.")
    api_docs: bool = Field(
        False, description="Serve the OpenAPI document and its page (/api/openapi.json, "
                           "/api/docs); off, both answer 404.")
    argon2_time_cost: int = Field(2, ge=1)
    argon2_memory_kib: int = Field(19 * 1024, ge=8 * 1024)

    @field_validator("token_secrets_previous", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @model_validator(mode="after")
    def _load_secret(self) -> GatewaySettings:
        if self.token_secret is None and self.token_secret_file is not None:
            self.token_secret = SecretStr(self.token_secret_file.read_text().strip())
        if self.token_secrets_previous_file is not None:
            if self.token_secrets_previous:
                raise ValueError("set DUET_TOKEN_SECRETS_PREVIOUS or its _FILE, not both")
            text = self.token_secrets_previous_file.read_text().replace("\n", ",")
            self.token_secrets_previous = [SecretStr(v.strip()) for v in text.split(",")
                                           if v.strip()]
        if self.token_secret is None:
            raise ValueError("set DUET_TOKEN_SECRET or DUET_TOKEN_SECRET_FILE")
        value = self.token_secret.get_secret_value()
        if len(value) < 32 or value.lower() in _PLACEHOLDERS:
            raise ValueError("the token secret must be 32+ characters and not a placeholder")
        return self

    @property
    def secret(self) -> bytes:
        assert self.token_secret is not None
        return self.token_secret.get_secret_value().encode()

    @property
    def verification_secrets(self) -> list[bytes]:
        """The current secret first, then the previous ones."""
        return [self.secret] + [s.get_secret_value().encode()
                                for s in self.token_secrets_previous]
