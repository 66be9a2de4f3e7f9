"""A small decoder-only transformer with progressive attention (PAM) and synthetic tasks.

Used by ``envdoctor smoke-train`` to check that an environment really trains, and as a readable
reference for PAM: see :mod:`reference_model.model`.
"""

from reference_model.model import PAMConfig, PAMTransformer, local_windows
from reference_model.tasks import TASKS, VOCAB_SIZE, Task, exact_match, make_task

__all__ = [
    "PAMConfig",
    "PAMTransformer",
    "TASKS",
    "Task",
    "VOCAB_SIZE",
    "exact_match",
    "local_windows",
    "make_task",
]
