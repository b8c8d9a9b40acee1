"""Pytrees: nested tuples, lists and dicts whose leaves are tensors or static Python values.

>>> import tracegrad as tg
>>> leaves, tree = flatten({"x": tg.ones(2), "n": 3, "pair": (tg.zeros(1), None)})
>>> [path for path, _ in leaves]
["['x']", "['n']", "['pair'][0]", "['pair'][1]"]
>>> unflatten(tree, [leaf for _, leaf in leaves])["n"]
3
"""
from __future__ import annotations


def flatten(tree, path: str = "") -> tuple[list, object]:
    """``[(path, leaf)]`` and a structure description for `unflatten`."""
    leaves: list = []
    return leaves, _flatten(tree, path, leaves)


def _flatten(tree, path, leaves):
    if isinstance(tree, (tuple, list)) and not hasattr(tree, "_data"):
        kind = type(tree)
        return (kind, tuple(_flatten(x, f"{path}[{i}]", leaves) for i, x in enumerate(tree)))
    if isinstance(tree, dict):
        return (dict, tuple((k, _flatten(v, f"{path}[{k!r}]", leaves)) for k, v in tree.items()))
    leaves.append((path, tree))
    return None


def unflatten(structure, leaves: list):
    it = iter(leaves)
    return _build(structure, it)


def _build(structure, it):
    if structure is None:
        return next(it)
    kind, children = structure
    if kind is dict:
        return {k: _build(c, it) for k, c in children}
    items = [_build(c, it) for c in children]
    if kind in (tuple, list):
        return kind(items)
    if hasattr(kind, "_fields"):  # namedtuple
        return kind(*items)
    return kind(items)
