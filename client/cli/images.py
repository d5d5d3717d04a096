"""Image files: what `send-image` reads and checks, where `listen` and `history` save."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
from pathlib import Path

from ..errors import ConfigError
from ..events import Message
from ..progress import Bar

READ_CHUNK = 256 * 1024
_MAGIC = [(b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif")]
_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
               "image/webp": ".webp"}


def save(directory: Path, message: Message) -> Path:
    """Write an image under a name made only of safe characters (never the sender's path)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ext = _EXTENSIONS.get(message.content.mime.split(";")[0].strip().lower(), ".bin")
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", f"{message.sender_name}-{message.id}")[:120]
    path = directory / f"{stem}{ext}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(message.content.data)
    return path


def sniff(path: Path, head: bytes) -> str:
    """The image type of a file from its first bytes, else its name; an error if neither."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    guessed = mimetypes.guess_type(path.name)[0]
    if guessed and guessed.startswith("image/"):
        return guessed
    raise ConfigError(f"{path} does not look like an image (PNG, JPEG, GIF or WebP)")


def check(path: Path, max_bytes: int) -> tuple[int, str]:
    """The size and image type of a file that can be sent; a readable error otherwise."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if not path.is_file():
        raise ConfigError(f"{path} is not a file")
    if size > max_bytes:
        raise ConfigError(f"{path} is {size} bytes; images may be at most {max_bytes} bytes")
    return size, sniff(path, head)


async def read(path: Path, size: int, bar: Bar) -> bytes:
    """The whole file, off the event loop, a chunk at a time on the bar's `read` stage."""
    chunks, done = [], 0
    with path.open("rb") as fh:
        while chunk := await asyncio.to_thread(fh.read, READ_CHUNK):
            chunks.append(chunk)
            done += len(chunk)
            bar.update("read", done / size if size else 1.0)
    return b"".join(chunks)
