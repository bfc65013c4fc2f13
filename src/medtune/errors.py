"""The one exception type for problems a user can fix."""


class MedtuneError(Exception):
    """A problem with the user's input or environment.

    The CLI prints the message as one paragraph, without a traceback, and exits with code 2.
    Messages name the file, line, key or option at fault and say what was expected.
    """
