"""The one base of errors a user can fix: the CLI and the UI show their message as one line."""


class UserError(Exception):
    """Bad input, a missing or damaged index, a wrong model: the message names it and says what to do."""
