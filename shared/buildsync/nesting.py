"""Walking a message as deep as Go nests it (10,000 levels) without recursion.

A writer that recurses once a level runs out of Python's recursion limit
(and, raised, of the C stack) a few hundred levels down. Writers here are
generators instead: a step writes what it can and yields the writing of a
nested message, which `run` finishes before that step resumes. The levels
then live on the heap, one suspended generator each, so any depth a decoder
took can be written, in whichever thread, with no process-wide setting.
"""

from __future__ import annotations

from collections.abc import Iterator

# A writing step: it yields the writings of its nested messages, each run to its end before it resumes.
Steps = Iterator["Steps"]


def run(steps: Steps) -> None:
    """Runs `steps` and every nested writing it yields, depth first, in order."""
    stack = [steps]
    while stack:
        nested = next(stack[-1], None)
        if nested is None:
            stack.pop()
        else:
            stack.append(nested)
