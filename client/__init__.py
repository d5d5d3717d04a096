"""duet's Python SDK and the `duet` command line."""

from .envelope import Content
from .errors import ApiError, ConfigError, CryptoError, DuetError, InsecureServer, SendError
from .events import Alert, Event, Message, Presence, ReadPosition, Receipt, Typing, Unsent
from .sdk import Client

__all__ = ["Alert", "ApiError", "Client", "ConfigError", "Content", "CryptoError", "DuetError",
           "Event", "InsecureServer", "Message", "Presence", "ReadPosition", "Receipt",
           "SendError", "Typing", "Unsent"]
