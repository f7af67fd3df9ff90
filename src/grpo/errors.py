"""The one exception family that the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """A problem the user can fix (bad config, missing file, bad data); the message says how."""
