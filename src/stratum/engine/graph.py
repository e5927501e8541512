"""Progress of one execution through its step DAG: which steps are ready, which are skipped.

Pure bookkeeping, no I/O. Edges come from the parsed definition (DependsOn, every Steps.X
reference, and each branch step's enclosing Condition). A Condition step's outcome skips the
steps of the branch not taken and, transitively, every step that depends on a skipped step:
SageMaker never runs them and ListPipelineExecutionSteps does not show them.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Mapping

PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
STOPPED = "Stopped"
SKIPPED = "Skipped"
FINISHED = frozenset({SUCCEEDED, FAILED, STOPPED, SKIPPED})


class Progress:
    def __init__(self, deps: Mapping[str, Iterable[str]], order: list[str],
                 branches: Mapping[str, tuple[list[str], list[str]]] | None = None) -> None:
        """``deps``: step -> steps it waits for; ``order``: a topological order (ties in document
        order); ``branches``: Condition step -> (IfSteps, ElseSteps)."""
        self.deps = {name: frozenset(deps.get(name, ())) for name in order}
        self.order = order
        self.index = {name: i for i, name in enumerate(order)}
        self.children: dict[str, list[str]] = {name: [] for name in order}
        for name, upstream in self.deps.items():
            for dep in upstream:
                self.children[dep].append(name)
        self.branches = dict(branches or {})
        self.state: dict[str, str] = dict.fromkeys(order, PENDING)
        self._missing = {name: len(up) for name, up in self.deps.items()}  # deps not yet Succeeded
        self._ready: list[tuple[int, str]] = []
        # perf_counter() when each step became ready: the start of its orchestration overhead.
        self.ready_at: dict[str, float] = {}

    # ---------------------------------------------------------------------------------- building
    def restore(self, states: Mapping[str, str], outcomes: Mapping[str, bool]) -> None:
        """Rebuild from recorded step states (restart, retry): ``states`` holds the finished and
        running steps, ``outcomes`` the Condition steps that succeeded."""
        for name, state in states.items():
            if name in self.state:
                self.state[name] = state
        for cond, outcome in outcomes.items():
            if self.state.get(cond) == SUCCEEDED and cond in self.branches:
                if_steps, else_steps = self.branches[cond]
                for name in else_steps if outcome else if_steps:
                    if self.state[name] == PENDING:
                        self.state[name] = SKIPPED
        for name in self.order:  # topological: upstream skips are settled first
            if self.state[name] == PENDING and any(self.state[d] == SKIPPED for d in self.deps[name]):
                self.state[name] = SKIPPED
        self._ready = []
        for name in self.order:
            self._missing[name] = sum(1 for d in self.deps[name] if self.state[d] != SUCCEEDED)
            if self.state[name] == PENDING and self._missing[name] == 0:
                heapq.heappush(self._ready, (self.index[name], name))
                self.ready_at[name] = time.perf_counter()

    def start(self) -> None:
        """Fresh execution: the steps without dependencies are ready."""
        self.restore({}, {})

    # ---------------------------------------------------------------------------------- querying
    def has_ready(self) -> bool:
        return bool(self._ready)

    def pop_ready(self) -> str | None:
        while self._ready:
            _, name = heapq.heappop(self._ready)
            if self.state[name] == PENDING:
                return name
        return None

    def ready_names(self) -> list[str]:
        return [name for _, name in sorted(self._ready) if self.state[name] == PENDING]

    def count(self, state: str) -> int:
        return sum(1 for s in self.state.values() if s == state)

    # ---------------------------------------------------------------------------------- updating
    def mark_running(self, name: str) -> None:
        self.state[name] = RUNNING

    def finish(self, name: str, state: str, outcome: bool | None = None) -> list[str]:
        """Record a step's end; returns the steps skipped because of it (Condition outcome)."""
        self.state[name] = state
        skipped: list[str] = []
        if state == SUCCEEDED:
            if outcome is not None and name in self.branches:
                if_steps, else_steps = self.branches[name]
                skipped = self.skip(else_steps if outcome else if_steps)
            for child in self.children[name]:
                self._missing[child] -= 1
                if self._missing[child] == 0 and self.state[child] == PENDING:
                    heapq.heappush(self._ready, (self.index[child], child))
                    self.ready_at[child] = time.perf_counter()
        return skipped

    def skip(self, roots: Iterable[str]) -> list[str]:
        """Skip ``roots`` and every pending step downstream of them; returns what was skipped."""
        skipped: list[str] = []
        stack = [r for r in roots if self.state.get(r) == PENDING]
        while stack:
            name = stack.pop()
            if self.state[name] != PENDING:
                continue
            self.state[name] = SKIPPED
            skipped.append(name)
            stack.extend(c for c in self.children[name] if self.state[c] == PENDING)
        return skipped
