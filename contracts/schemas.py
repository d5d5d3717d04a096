"""JSON Schema export of every contract model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from . import api, documents, envelope, events, frames, keys

SCHEMA_DIR = Path(__file__).parent / "schema"

_MODELS: dict[str, Any] = {
    "client-frame": frames.client_frame,
    "server-frame": frames.server_frame,
    "device-client-frame": frames.device_client_frame,
    "device-server-frame": frames.device_server_frame,
    "room-message": events.RoomMessage,
    "stored-notice": events.StoredNotice,
    "message-document": documents.MessageDocument,
    "user-document": documents.UserDocument,
    "friendship-document": documents.FriendshipDocument,
    "credentials": api.Credentials,
    "token": api.Token,
    "friends": api.Friends,
    "history-page": api.HistoryPage,
    "problem": api.Problem,
    "envelope": envelope.Envelope,
    "keys-upload": keys.KeysUpload,
    "user": api.UserOut,
    "conversations": api.Conversations,
    "read-position": api.ReadPosition,
    "read-state": api.ReadState,
    "settings": api.Settings,
    "read-document": documents.ReadDocument,
    "presence-document": documents.PresenceDocument,
}


def schemas() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, model in _MODELS.items():
        adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
        out[name] = adapter.json_schema(by_alias=True)
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(render(schema))
        written.append(path)
    return written
