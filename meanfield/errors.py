"""Exceptions shared by every module; the CLI maps them to exit codes."""


class ConfigError(ValueError):
    """Invalid user input: bad config key, value, type, or data file (exit code 2)."""


class NumericalError(RuntimeError):
    """A run produced NaN/inf or blew up (exit code 3); the message says where."""


class ConvergenceError(NumericalError):
    """An OT solver stopped before reaching optimality or its marginal tolerance.

    A :class:`RuntimeError` (through :class:`~meanfield.errors.NumericalError`).
    """


class EnvironmentFailure(RuntimeError):
    """The machine, not the input, stopped the run (exit code 1).

    A directory that cannot be written, a full disk, a memory limit, an unreachable
    scheduler, a killed worker; the message says what to do.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM (what a cluster scheduler sends), raised by the CLI's handler (exit code 143).

    A :class:`KeyboardInterrupt`, so it unwinds the same way: finished tasks are kept and
    the runner writes ``manifest.json`` on its way out.
    """
