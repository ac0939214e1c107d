"""Errors a user can cause in the trainer; str() of each is the one sentence the CLI prints."""

from ..errors import UserError


class TrainerError(UserError):
    """Base of the trainer's user-facing errors."""


class DatasetError(TrainerError):
    """A data set that is unknown, cannot be fetched, or fails its checksums."""


class ConfigError(TrainerError):
    """Training settings that cannot work together (bad sizes, fractions, methods)."""
