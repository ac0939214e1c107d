"""The two kinds of error sparsetopo raises on purpose.

UserError: a mistake the user can fix (a bad value, an unknown run, a server that is not
running); the CLI prints str() of it as one sentence and exits with status 1.
IntegrityError: stored data that contradicts itself; the CLI shows its traceback, because it
points at a bug or at damage, not at a typo. Any other exception is a bug and is shown in full.
"""


class UserError(Exception):
    """A mistake the user can fix; str() is the sentence the CLI prints."""


class UsageError(UserError):
    """A command used with values it cannot work with."""


class IntegrityError(Exception):
    """Stored data that contradicts itself (lifetimes against per-step matrices, open synapses)."""
