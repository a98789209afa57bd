"""The base class of errors a user can fix: the CLI prints them as one line, no traceback."""


class UserError(Exception):
    """A problem in the input, the hosts or the cache that the user can fix; str() says how."""

    def message(self) -> str:
        """What the CLI prints."""
        return f"error: {self}"
