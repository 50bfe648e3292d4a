"""Exceptions shared by every module; the CLI maps them to exit codes."""


class ConfigError(ValueError):
    """Invalid user input: bad config key, value, type, or data file (exit code 2)."""


class NumericalError(RuntimeError):
    """A run produced NaN/inf or blew up (exit code 3); the message says where."""


class ConvergenceError(NumericalError):
    """An OT solver stopped before reaching optimality or its marginal tolerance.

    A :class:`RuntimeError` (through :class:`NumericalError`).
    """
