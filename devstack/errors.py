"""The one exception tree of devstack.

StackError              anything that keeps the local stack from running
├── ToolMissing         a binary we need (mongod, rabbitmq-server) is not installed
├── StartFailed         a process could not start or did not answer in time
└── ChildDied           a service exited, while starting or while running
"""

from __future__ import annotations


class StackError(Exception):
    """Base of every devstack error; its message is meant for the person at the terminal."""


class ToolMissing(StackError):
    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(tool, hint)
        self.tool = tool
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.tool} is not installed: {self.hint}"


class StartFailed(StackError):
    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what} did not start: {self.reason}"


class ChildDied(StackError):
    def __init__(self, name: str, returncode: int, output: str = "") -> None:
        super().__init__(name, returncode, output)
        self.name = name
        self.returncode = returncode
        self.output = output  # its last output, when it logged to a file

    def __str__(self) -> str:
        text = f"{self.name} exited unexpectedly with code {self.returncode}"
        return f"{text}:\n{self.output}" if self.output else text
