import itertools
import math

import pytest

from greenloop.evaluate.passk import pass_at_k, pass_at_k_table


def brute_force(n: int, c: int, k: int) -> float:
    """Share of all k-subsets of n samples (c of them correct) holding a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_matches_brute_force_over_combinations(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12)


def test_closed_form_for_large_n():
    n, c, k = 200, 13, 10
    expected = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12)


def test_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 0)


def test_table_averages_tasks_and_skips_k_above_sample_count():
    results = [("a", True), ("a", False), ("b", False), ("b", False)]
    table = pass_at_k_table(results, [1, 2, 10])
    assert table["pass_at_k"]["1"] == pytest.approx((0.5 + 0.0) / 2)
    assert table["pass_at_k"]["2"] == pytest.approx((1.0 + 0.0) / 2)
    assert table["skipped_k"] == [10]
    assert table["per_task"]["a"] == {"n": 2, "c": 1}
