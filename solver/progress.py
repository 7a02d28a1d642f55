"""Progress messages: a callable that takes one line, for the planner and the commands."""

from collections.abc import Callable

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """The progress callback that shows nothing."""
