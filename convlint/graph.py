"""Walks of a model's graph, in one place: what an op depends on, what depends on it, and
the branch between two of them. Nodes are torch.fx nodes; nothing here imports torch."""

from __future__ import annotations

from typing import Callable, Iterable


def reach(node, step: Callable[[object], Iterable]) -> set:
    """``node`` and every node reached from it by ``step`` (inputs or users), transitively."""
    seen, stack = {node}, [node]
    while stack:
        for n in step(stack.pop()):
            if n not in seen:
                seen.add(n)
                stack.append(n)
    return seen


def ancestors(node) -> set:
    """``node`` and every node it depends on."""
    return reach(node, lambda n: n.all_input_nodes)


def descendants(node) -> set:
    """``node`` and every node that depends on it."""
    return reach(node, lambda n: n.users)


def branch(start, fork) -> list:
    """The nodes after ``fork`` on the way to ``start``, in execution order, following the
    branch back from ``start`` through nodes that depend on ``fork``."""
    between = descendants(fork) & ancestors(start)
    path, node = [], start
    while node is not fork:
        path.append(node)
        node = next((a for a in node.all_input_nodes if a is fork or a in between), None)
        if node is None:
            break
    return list(reversed(path))
