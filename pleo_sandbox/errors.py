"""The error the sandbox's domain raises; the HTTP layer turns it into Pleo's ``ExceptionInfo``."""

from __future__ import annotations


class ApiError(Exception):
    """An HTTP error answer: ``{"type": type, "message": message}`` with ``status``."""

    def __init__(
        self, status: int, type: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {type}: {message}")
        self.status = status
        self.type = type
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"type": self.type, "message": self.message}
