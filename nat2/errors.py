"""User-facing errors.

Every problem a user can fix (a bad ``params.yaml`` value, a missing dataset, a corrupt file) is raised as a
:class:`Nat2Error` whose message is ONE line naming the problem and the fix. Stage CLIs catch it, print the line to
stderr and exit with status 2, before any output is written.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "Nat2Error", "EXIT_USER_ERROR", "first_line"]

EXIT_USER_ERROR = 2


class Nat2Error(Exception):
    """A problem the user can fix; the message is a single line that says how."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ConfigError(Nat2Error):
    """An invalid key, type or value in a params file."""


class DataError(Nat2Error):
    """A dataset or data file that is unavailable, corrupt or inconsistent."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when empty), to quote a library error in a one-line one."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
