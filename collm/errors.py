"""One error type for everything a user can get wrong; the CLI prints it and exits 2."""


class CollmError(Exception):
    """A clear, user-facing error (bad input, missing model, bad file...)."""

    exit_code = 2
