"""The local token secret: generated once into the state dir, readable by its owner only."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "token_secret"
MIN_LENGTH = 32  # what the gateway accepts


def ensure_token_secret(state_dir: Path) -> Path:
    """Path of `state_dir/token_secret`, creating it with a random secret (mode 0600) once.

    Reusing the file keeps tokens issued before a restart of the stack valid.
    """
    path = Path(state_dir) / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)  # 64 characters
    try:
        # O_EXCL: never replace an existing secret by accident. The mode is set at creation,
        # so the file is never readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _keep_private(path)
        if len(path.read_text().strip()) >= MIN_LENGTH:
            return path
        # An empty or short file (a crash mid-write, a hand edit) would stop the gateway.
        log.warning("%s holds no usable secret; writing a new one", path)
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as out:
        out.write(secret)
    # A umask cannot widen the mode, but one that removes owner bits would: set it outright.
    os.chmod(path, 0o600)
    log.info("generated a token secret in %s", path)
    return path


def _keep_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); setting it to 0600", path, mode)
        os.chmod(path, 0o600)
