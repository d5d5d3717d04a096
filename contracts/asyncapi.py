"""The AsyncAPI 3.0 document of duet, generated from the contracts (contracts/asyncapi.json).

It describes the two WebSocket channels a client speaks (`/ws/{peerId}`, protocol v1, and
`/ws`, the device socket, v2) and the broker: the topic exchange, its routing keys and
what travels under each. Written from the gateway's side: it receives the clients' frames
and sends its own; it sends and receives on the exchange. tests/unit/test_contracts.py
checks the committed file against this module and validates it against AsyncAPI's own
JSON Schema for 3.0.0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from . import events, frames
from .codes import CLOSES

ASYNCAPI_PATH = Path(__file__).parent / "asyncapi.json"
_REF = "#/components/schemas/{model}"

# (message name, model, summary): what a client sends, then what it is sent.
Entry = tuple[str, type[BaseModel], str]
_V1_IN: list[Entry] = [("send", frames.SendFrame, "Send one message to the room's other member."),
          ("sync", frames.SyncFrame, "Replay stored messages after a cursor, then live.")]
_V2_IN: list[Entry] = [
          ("deviceSend", frames.DeviceSendFrame, "Send a message or receipt to a friend."),
          ("deviceSync", frames.DeviceSyncFrame, "Replay every room after its cursor."),
          ("typing", frames.TypingFrame, "An encrypted typing signal; never stored."),
          ("read", frames.ReadFrame, "This user read the room up to a cursor.")]
_COMMON_OUT: list[Entry] = [
    ("ack", frames.AckFrame, "The broker confirmed the publish: the message is durable."),
    ("message", frames.MessageFrame, "A message (v2: or a receipt) of a room."),
    ("stored", frames.StoredFrame, "The persister wrote the sender's message to MongoDB."),
    ("synced", frames.SyncedFrame, "The end of a sync replay."),
    ("error", frames.ErrorFrame, "A frame was refused; the socket stays open."),
]
_V1_OUT: list[Entry] = [("ready", frames.ReadyFrame, "v1: joined the room; live from now on."),
           *_COMMON_OUT]
_V2_OUT: list[Entry] = [
           ("deviceReady", frames.DeviceReadyFrame, "Every room of the user, live from now."),
           *_COMMON_OUT,
           ("typingEvent", frames.TypingEvent, "A friend's typing signal."),
           ("presence", frames.PresenceEvent, "A friend went online or offline."),
           ("readEvent", frames.ReadEvent, "This user's read position moved."),
           ("unsent", frames.UnsentEvent, "Messages pushed live that the broker did not "
                                          "confirm: show them as not sent.")]
_BROKER: list[tuple[str, str, type[BaseModel], str]] = [
    ("roomMessages", "room.{lo}.{hi}", events.RoomMessage,
     "Chat messages and receipts, persistent and confirmed: one `message` frame per line, "
     "headers x-duet-origin and x-duet-cursor (one line per frame), several rooms' keys in "
     "CC with x-duet-room. Bound to duet.persist, duet.audit and the users' gateways."),
    ("typingSignals", "typing.{lo}.{hi}", frames.TypingEvent,
     "Typing signals, transient and unconfirmed: to the users' gateways only."),
    ("presenceEvents", "presence.{lo}.{hi}", frames.PresenceEvent,
     "A user went online or offline: one publish under one of their rooms with every other "
     "room in CC; transient, to gateways only."),
    ("unsentNotices", "unsent.{lo}.{hi}", frames.UnsentEvent,
     "Messages a gateway published but the broker did not confirm: to the users' gateways "
     "only; transient."),
    ("readPositions", "user.{uid}.read", frames.ReadEvent,
     "A user's read position moved: to that user's gateways only; transient."),
    ("storedNotices", "stored", events.StoredNotice,
     "What a persister batch wrote: every gateway binds it; transient."),
]


class _Schemas:
    """Collects each model's JSON Schema, and the models it refers to, under components."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, model: type[BaseModel]) -> dict[str, str]:
        schema = TypeAdapter(model).json_schema(by_alias=True, ref_template=_REF)
        self.components.update(schema.pop("$defs", {}))
        self.components[model.__name__] = schema
        return {"$ref": _REF.format(model=model.__name__)}


def _message(schemas: _Schemas, name: str, model: type[BaseModel], summary: str
             ) -> dict[str, Any]:
    return {"name": name, "title": model.__name__, "summary": summary,
            "contentType": "application/json", "payload": schemas.ref(model)}


def _socket(address: str, title: str, description: str, messages: list[str]
            ) -> dict[str, Any]:
    return {"address": address, "title": title, "description": description,
            "servers": [{"$ref": "#/servers/gateway"}],
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in messages}}


def document() -> dict[str, Any]:
    schemas = _Schemas()
    messages: dict[str, dict[str, Any]] = {}
    for name, model, summary in [*_V1_IN, *_V2_IN, *_V1_OUT, *_V2_OUT]:
        messages[name] = _message(schemas, name, model, summary)
    closes = "; ".join(f"{c.code} {c.name} ({c.cause}; reconnect: {c.retry})"
                       for c in CLOSES.values())
    auth = ("Authenticate with `Authorization: Bearer <token>`, or from a browser with the "
            "subprotocols `{proto}, bearer.<token>`. Close codes: " + closes + ".")
    channels: dict[str, Any] = {
        "roomSocket": {
            **_socket("/ws/{peerId}", "Room socket (protocol v1)",
                      auth.format(proto="duet.v1"),
                      [n for n, _, _ in [*_V1_IN, *_V1_OUT]]),
            "parameters": {"peerId": {"description": "The accepted friend's user id."}},
        },
        "deviceSocket": _socket("/ws", "Device socket (protocol v2)",
                                auth.format(proto="duet.v2"),
                                [n for n, _, _ in [*_V2_IN, *_V2_OUT]]),
    }
    operations: dict[str, Any] = {}
    for channel, ins, outs in (("roomSocket", _V1_IN, _V1_OUT),
                               ("deviceSocket", _V2_IN, _V2_OUT)):
        for action, group in (("receive", ins), ("send", outs)):
            operations[f"{channel}{action.title()}"] = {
                "action": action, "channel": {"$ref": f"#/channels/{channel}"},
                "messages": [{"$ref": f"#/channels/{channel}/messages/{n}"}
                             for n, _, _ in group]}
    exchange = {"name": "duet.rooms", "type": "topic", "durable": True, "autoDelete": False,
                "vhost": "/"}
    for name, address, model, summary in _BROKER:
        message = f"{name}Message"
        messages[message] = _message(schemas, message, model, summary)
        params = [p.strip("{}") for p in address.split(".") if p.startswith("{")]
        channels[name] = {
            "address": address, "description": summary,
            "servers": [{"$ref": "#/servers/broker"}],
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": exchange,
                                  "bindingVersion": "0.3.0"}},
        }
        if params:
            channels[name]["parameters"] = {
                p: {"description": "A user id (24 hex digits); lo < hi in a room key."}
                for p in params}
        for action in ("send", "receive"):
            operations[f"{name}{action.title()}"] = {
                "action": action, "channel": {"$ref": f"#/channels/{name}"},
                "messages": [{"$ref": f"#/channels/{name}/messages/{message}"}]}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "duet", "version": "2",
                 "description": "End-to-end-encrypted 1:1 chat: the gateway's WebSocket "
                                "protocols and the RabbitMQ topic exchange behind them. "
                                "Error and close codes: contracts/codes.py."},
        "defaultContentType": "application/json",
        "servers": {
            "gateway": {"host": "localhost:8000", "protocol": "wss",
                        "description": "A gateway, or the load balancer in front of them."},
            "broker": {"host": "localhost:5672", "protocol": "amqp",
                       "protocolVersion": "0.9.1",
                       "description": "RabbitMQ; every name takes DUET_PREFIX."},
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas.components, "messages": messages},
    }


def render_asyncapi() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"
