"""Dependency-graph helpers for pipeline steps.

Graphs are ``{step: {steps it depends on}}``. Kept free of pipeline specifics so the
executor can reuse them on sub-graphs (e.g. selective execution).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence, Set


class CycleError(ValueError):
    """The graph has a cycle; ``path`` lists it in execution order, first node repeated last."""

    def __init__(self, path: list[str]) -> None:
        self.path = path
        super().__init__(" -> ".join(path))


def find_cycle(deps: Mapping[str, Set[str]], order: Sequence[str]) -> list[str] | None:
    """Return one cycle in execution order (upstream first), or None if the graph is acyclic.

    Nodes are explored in ``order`` so the reported cycle is deterministic.
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(order, white)
    index = {name: i for i, name in enumerate(order)}

    def sorted_deps(name: str) -> list[str]:
        return sorted(deps.get(name, ()), key=lambda dep: index.get(dep, len(index)))

    for root in order:
        if colour[root] != white:
            continue
        # Iterative DFS: definitions are user input, so their depth must not hit the recursion limit.
        path: list[str] = [root]
        colour[root] = grey
        iterators = [iter(sorted_deps(root))]
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                iterators.pop()
                continue
            if colour.get(nxt, black) == grey:
                # path[i:] follows "depends on" edges; reverse it so arrows read upstream -> downstream.
                start = path.index(nxt)
                cycle = list(reversed(path[start:]))
                # Start at the node written first so the message does not depend on traversal.
                first = min(range(len(cycle)), key=lambda i: index.get(cycle[i], len(index)))
                cycle = cycle[first:] + cycle[:first]
                return [*cycle, cycle[0]]
            if colour.get(nxt) == white:
                colour[nxt] = grey
                path.append(nxt)
                iterators.append(iter(sorted_deps(nxt)))
    return None


def topological_order(deps: Mapping[str, Set[str]], order: Sequence[str]) -> list[str]:
    """Kahn's algorithm; among ready nodes the one earliest in ``order`` goes first.

    The tie-break keeps the result stable across runs and close to how the user wrote the
    definition, which makes ListPipelineExecutionSteps output predictable.
    Every dependency must itself appear in ``order``. Raises CycleError if not every node
    can be ordered.
    """
    index = {name: i for i, name in enumerate(order)}
    remaining = {name: len(deps.get(name, ())) for name in order}
    dependents: dict[str, list[str]] = {name: [] for name in order}
    for name in order:
        for upstream in deps.get(name, ()):
            dependents[upstream].append(name)
    ready = [(index[name], name) for name in order if remaining[name] == 0]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        result.append(name)
        for downstream in dependents[name]:
            remaining[downstream] -= 1
            if remaining[downstream] == 0:
                heapq.heappush(ready, (index[downstream], downstream))
    if len(result) != len(order):
        cycle = find_cycle(deps, order)
        # Kahn stalling implies a cycle exists, so find_cycle cannot return None here.
        raise CycleError(cycle or [name for name in order if name not in result])
    return result
