"""duet's Python SDK and the `duet` command line."""

from .envelope import Content
from .errors import ApiError, ConfigError, CryptoError, DuetError, SendError
from .sdk import Alert, Client, Event, Message

__all__ = ["Alert", "ApiError", "Client", "ConfigError", "Content", "CryptoError", "DuetError",
           "Event", "Message", "SendError"]
