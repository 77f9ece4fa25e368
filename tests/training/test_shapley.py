"""Exact Shapley values and interaction indices against values computed by hand."""

from __future__ import annotations

import itertools

import pytest

from fuselab.training.shapley import all_subsets, interaction_indices, shapley_values, subset_name


def game(players, value):
    return {s: float(value(s)) for s in all_subsets(players)}


def test_two_players_by_hand():
    v = {frozenset(): 0.25, frozenset("a"): 0.9, frozenset("b"): 0.3, frozenset("ab"): 0.95}
    phi = shapley_values(v, ["a", "b"])
    # a: ((0.9 - 0.25) + (0.95 - 0.3)) / 2, b: ((0.3 - 0.25) + (0.95 - 0.9)) / 2
    assert phi == pytest.approx({"a": 0.65, "b": 0.05})
    assert interaction_indices(v, ["a", "b"]) == pytest.approx({("a", "b"): 0.95 - 0.9 - 0.3 + 0.25})


def test_the_glove_game_by_hand():
    # one left glove L, two right gloves R1 R2: a subset is worth 1 when it holds a pair
    players = ["L", "R1", "R2"]
    v = game(players, lambda s: "L" in s and ("R1" in s or "R2" in s))
    assert shapley_values(v, players) == pytest.approx({"L": 2 / 3, "R1": 1 / 6, "R2": 1 / 6})
    # L and R1 complete each other (+1/2); the two right gloves substitute for each other (-1/2)
    assert interaction_indices(v, players) == pytest.approx({("L", "R1"): 0.5, ("L", "R2"): 0.5, ("R1", "R2"): -0.5})


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_efficiency_symmetry_and_null_player(n):
    players = [f"m{i}" for i in range(n)]
    weights = {p: 0.1 * (i + 1) for i, p in enumerate(players)}
    weights[players[-1]] = 0.0  # changes nothing
    if n >= 3:
        weights[players[1]] = weights[players[0]]  # the same as m0
    v = game(players, lambda s: sum(weights[p] for p in s) ** 2 + 0.2)
    phi = shapley_values(v, players)
    assert sum(phi.values()) == pytest.approx(v[frozenset(players)] - v[frozenset()])
    assert phi[players[-1]] == pytest.approx(0.0)
    if n >= 3:
        assert phi[players[0]] == pytest.approx(phi[players[1]])
    for (i, j), x in interaction_indices(v, players).items():
        if players[-1] in (i, j):
            assert x == pytest.approx(0.0)  # a null player interacts with nobody


def test_an_additive_game_has_no_interaction_and_its_weights_as_values():
    players = ["a", "b", "c"]
    w = {"a": 0.5, "b": -0.2, "c": 0.1}
    v = game(players, lambda s: sum(w[p] for p in s))
    assert shapley_values(v, players) == pytest.approx(w)
    assert all(x == pytest.approx(0.0) for x in interaction_indices(v, players).values())


def test_subsets_are_all_there_and_named():
    players = ["signal", "tokens", "image"]
    subsets = all_subsets(players)
    assert len(subsets) == 8 and subsets[0] == frozenset() and subsets[-1] == frozenset(players)
    assert [subset_name(s, players) for s in subsets[:2]] == ["none", "signal"]
    assert subset_name(frozenset(["image", "signal"]), players) == "signal+image"
    v = {s: 0.0 for s in subsets if s != frozenset(["tokens"])}
    with pytest.raises(ValueError, match=r"no value for the subsets \['tokens'\]"):
        shapley_values(v, players)
    assert list(itertools.combinations(players, 2)) == list(interaction_indices(game(players, len), players))
