"""The project's exceptions: one for bad input, one for solver failure."""


class MecllmError(Exception):
    """Base class of every error mecllm raises on purpose."""


class InvalidInputError(MecllmError, ValueError):
    """Input that breaks a rule; the message names the field, the rule and the value.

    The command-line interface turns it into exit status 2 and one line on stderr.
    """


class SolverError(MecllmError, RuntimeError):
    """A solver could not return a feasible plan; the message names the solver and what to try.

    The command-line interface turns it into exit status 1.
    """


class InfeasiblePlanError(MecllmError):
    """A plan given to a runner breaks a constraint; the message names the first violation.

    The command-line interface turns it into exit status 1, as for ``evaluate``.
    """
