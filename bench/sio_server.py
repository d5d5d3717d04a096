"""A reference from the issue's table: python-socketio over RabbitMQ, no storage.

    python -m bench.sio_server --port 8766 --amqp URL --channel NAME

python-socketio's AsyncServer on uvicorn with `AsyncAioPikaManager` (every emit goes
through a RabbitMQ fanout exchange to every server process, which pushes it to its local
room members), the way a team would put a pair-room chat on Socket.IO with RabbitMQ. A
client connects with auth `{"user": id, "peer": id}` and joins the pair's room; an event
`send` carrying a v1 `send` frame is emitted to the room as a `message` frame (sender
stamped from the connection, not the frame) and answered with the Socket.IO ack
`{"type": "ack", "id": ...}` once the emit was published. No durability: nothing waits
for the broker's confirm and nothing is stored. `GET /readyz` answers 200.
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
import uvicorn


def create_app(amqp_url: str, channel: str) -> Any:
    manager = socketio.AsyncAioPikaManager(amqp_url, channel=channel)
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager,
                               cors_allowed_origins=[])
    members: dict[str, tuple[str, str]] = {}  # sid -> (user, room)

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, str]) -> None:
        user, peer = auth["user"], auth["peer"]
        room = ".".join(sorted((user, peer)))
        members[sid] = (user, room)
        await sio.enter_room(sid, room)

    @sio.event
    async def disconnect(sid: str, *_: Any) -> None:
        members.pop(sid, None)

    @sio.on("send")
    async def send(sid: str, frame: dict[str, Any]) -> dict[str, str]:
        user, room = members[sid]
        await sio.emit("message", {"type": "message", "id": frame["id"], "sender": user,
                                   "room": room, "kind": frame["kind"],
                                   "body": frame["body"]}, room=room, skip_sid=sid)
        return {"type": "ack", "id": frame["id"]}

    async def ready(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok\n"})

    return socketio.ASGIApp(sio, other_asgi_app=ready)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sio_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--channel", default="bench-socketio")
    args = parser.parse_args()
    # As the gateway runs: uvloop and httptools (uvicorn picks them), no deflate.
    uvicorn.run(create_app(args.amqp, args.channel), host=args.host, port=args.port,
                log_level="warning", ws_per_message_deflate=False, access_log=False)


if __name__ == "__main__":
    main()
