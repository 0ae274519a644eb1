"""Errors a user can act on. The CLIs print ``str(err)`` on one line and exit with code 2."""


class AsapDeployError(Exception):
    """Base class: the message says what is wrong and what to do about it."""

    exit_code = 2


class CheckpointError(AsapDeployError):
    pass


class ConfigError(AsapDeployError):
    pass


class ResolutionError(ConfigError):
    pass


class MissingDependencyError(AsapDeployError):
    pass


class InputError(AsapDeployError):
    """An input a runner or application was given does not fit the model (one line: what was
    expected, what came, what to do)."""
