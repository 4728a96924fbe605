"""mecllm: plan collaborative LLM adapter fine-tuning at the wireless edge.

The five nouns of the package are an :class:`~mecllm.instance.Instance` (who is where and what
each node can do), a solver (``mecllm.solvers``), a :class:`~mecllm.solution.Plan` (association,
split and resource shares), the physics that scores any plan (:func:`mecllm.physics.evaluate`)
and the command-line interface (``mecllm``).
"""

from mecllm.errors import InvalidInputError, MecllmError, SolverError
from mecllm.instance import Instance
from mecllm.physics import Evaluation, evaluate
from mecllm.solution import Plan, SolveResult

__all__ = [
    "Evaluation",
    "Instance",
    "InvalidInputError",
    "MecllmError",
    "Plan",
    "SolveResult",
    "SolverError",
    "evaluate",
]
__version__ = "0.1.0"
