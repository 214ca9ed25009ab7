"""The one exception type that the CLI turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input, a missing file, an impossible setting: the message is all the user needs."""
