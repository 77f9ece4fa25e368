"""Exact Shapley values and Shapley interaction indices of a game over a few players (here: the
modalities of a trained model, the game's value of a subset being a test metric of the model
when only that subset is present).

For players ``N`` (``n = |N|``) and a value ``v`` of every subset:

- the Shapley value of ``i`` is its marginal gain ``v(S + i) - v(S)`` averaged over all orders
  in which the players can arrive: ``sum over S of |S|! (n-|S|-1)! / n!`` times the gain, over
  the subsets ``S`` without ``i``. The values sum to ``v(N) - v(empty)`` (efficiency), players
  that change ``v`` in the same way get the same value (symmetry), and a player that never
  changes ``v`` gets 0 (null player);
- the Shapley interaction index of a pair ``i, j`` (Grabisch and Roubens, 1999) averages the pair's
  joint effect ``v(S+ij) - v(S+i) - v(S+j) + v(S)`` with weights ``|S|! (n-|S|-2)! / (n-1)!``
  over the subsets ``S`` without either: positive when the pair does more together than the
  two do apart (one completes the other), negative when they carry the same information.

Exact means ``2^n`` values; :data:`MAX_PLAYERS` bounds ``n``. Pure Python: no torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from math import factorial

Subset = frozenset[str]

# 2^8 = 256 evaluations of the test split; past that an exact answer costs more than a user expects
MAX_PLAYERS = 8


def all_subsets(players: Sequence[str]) -> list[Subset]:
    """Every subset of ``players``, the empty one first, then by size, in the players' order."""
    return [frozenset(c) for k in range(len(players) + 1) for c in itertools.combinations(players, k)]


def subset_name(subset: Subset, players: Sequence[str]) -> str:
    """``a+b`` in the players' order; the empty subset is ``none``."""
    return "+".join(p for p in players if p in subset) or "none"


def _complete(values: Mapping[Subset, float], players: Sequence[str]) -> None:
    if len(set(players)) != len(players):
        raise ValueError(f"players named twice: {list(players)}")
    missing = [subset_name(s, players) for s in all_subsets(players) if s not in values]
    if missing:
        raise ValueError(f"the game has no value for the subsets {missing[:5]}")


def shapley_values(values: Mapping[Subset, float], players: Sequence[str]) -> dict[str, float]:
    """Each player's Shapley value of the game ``values`` (every subset of ``players``)."""
    _complete(values, players)
    n = len(players)
    out = {}
    for p in players:
        others = [q for q in players if q != p]
        total = 0.0
        for s in all_subsets(others):
            weight = factorial(len(s)) * factorial(n - len(s) - 1) / factorial(n)
            total += weight * (values[s | {p}] - values[s])
        out[p] = total
    return out


def interaction_indices(values: Mapping[Subset, float], players: Sequence[str]) -> dict[tuple[str, str], float]:
    """The Shapley interaction index of every pair of players (in the players' order)."""
    _complete(values, players)
    n = len(players)
    out = {}
    for i, j in itertools.combinations(players, 2):
        others = [q for q in players if q not in (i, j)]
        total = 0.0
        for s in all_subsets(others):
            weight = factorial(len(s)) * factorial(n - len(s) - 2) / factorial(n - 1)
            total += weight * (values[s | {i, j}] - values[s | {i}] - values[s | {j}] + values[s])
        out[(i, j)] = total
    return out
