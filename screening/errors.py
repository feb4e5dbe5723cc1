"""The base of every error whose message is meant for the user, not a traceback."""


class UserError(ValueError):
    """Bad input (a path, a file, an option); command-line tools print it as one line."""


class ImageError(UserError):
    """An input that cannot be turned into a model image; the message is for the user."""
