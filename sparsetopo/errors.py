"""Errors of the application layer; str() is the sentence the CLI prints."""


class UsageError(Exception):
    """A command used with values it cannot work with."""
