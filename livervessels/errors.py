"""Error types that map to the exit codes users see.

InputError: the user's input or usage is wrong (exit 2). The message is one line that says what
is wrong and what to do. Anything else is an internal failure (exit 1).
"""


class InputError(Exception):
    """Bad input or usage: reported as one line, exit code 2."""

    exit_code = 2


class ModelNotFoundError(InputError):
    """Weights for a task are not installed where we looked."""


class PacsError(Exception):
    """A PACS could not be reached or refused an object; the outputs stay on disk (exit code 4)."""

    exit_code = 4
