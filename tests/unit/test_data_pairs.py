"""The pair record: span, diff, token counts, difficulty and buckets."""

import pytest

from greenloop.data.pairs import (PAIR_FIELDS, bucket, bucket_cuts, changed_span, changed_tokens, difficulty,
                                  make_pair, token_distance, changed_lines)

FIXED = "def f(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n"


def test_make_pair_locates_the_change():
    buggy = FIXED.replace("total += x", "total -= x")
    pair = make_pair(bug_type="wrong_operator", family="logic", source="dir:x", path="a.py", unit="f",
                     buggy=buggy, fixed=FIXED)
    assert set(pair) == set(PAIR_FIELDS)
    assert pair["span"] == [4, 4]
    assert "-        total -= x\n" in pair["diff"] and "+        total += x\n" in pair["diff"]
    assert pair["verified"] is None and len(pair["pair_id"]) == 16


def test_pair_id_depends_on_both_sides_and_origin():
    a = make_pair(bug_type="t", family="logic", source="s", path="p", unit="u", buggy="x = 1\n", fixed="x = 2\n")
    b = make_pair(bug_type="t", family="logic", source="s", path="q", unit="u", buggy="x = 1\n", fixed="x = 2\n")
    assert a["pair_id"] != b["pair_id"]


def test_span_of_a_deletion_points_after_it():
    buggy = FIXED.replace("    total = 0\n", "")
    assert changed_span(buggy, FIXED) == (2, 2)
    assert changed_span(FIXED, FIXED) == (0, 0)


def test_changed_tokens_counts_only_what_differs():
    assert changed_tokens(FIXED.replace("+=", "-="), FIXED) == 1
    assert changed_tokens(FIXED.replace("return total", "return total + 1 + 2"), FIXED) == 4


def test_comments_and_spacing_are_not_a_change_but_indentation_is():
    commented = FIXED.replace("total = 0", "total = 0  # start")
    assert token_distance(*changed_lines(commented, FIXED)) == (0, False)
    spaced = FIXED.replace("total = 0", "total  =  0")
    assert token_distance(*changed_lines(spaced, FIXED)) == (0, False)
    indented = FIXED.replace("    return total", "        return total")
    assert token_distance(*changed_lines(indented, FIXED))[1] is True


def test_difficulty_grows_with_family_size_and_distance():
    assert difficulty("syntax", 1, 0) == 0.0
    assert difficulty("logic", 1, 0) > difficulty("style", 1, 0) > difficulty("syntax", 1, 0)
    assert difficulty("logic", 5, 0) > difficulty("logic", 1, 0)
    assert difficulty("logic", 1, 10) > difficulty("logic", 1, 2)
    assert difficulty("logic", 100, 1000) == pytest.approx(0.5 * 0.8 + 0.2 + 0.3)


def test_syntax_pairs_measure_distance_to_the_reported_line():
    buggy = FIXED.replace("for x in xs:", "for x in xs")
    near = make_pair(bug_type="missing_colon", family="syntax", source="s", path="p", unit="f", buggy=buggy,
                     fixed=FIXED, symptom_line=3)
    far = make_pair(bug_type="missing_colon", family="syntax", source="s", path="p", unit="f", buggy=buggy,
                    fixed=FIXED, symptom_line=30)
    assert near["difficulty"] < far["difficulty"]


@pytest.mark.parametrize("scores", [[0.1 * i for i in range(10)], [0.0] * 5 + [0.5] * 5, [0.3], []])
def test_buckets_cut_sorted_scores_evenly(scores):
    cuts = bucket_cuts(scores)
    buckets = [bucket(s, cuts) for s in scores]
    assert all(0 <= b <= 4 for b in buckets)
    assert buckets == sorted(buckets)  # the scores are sorted, so are their buckets
    for a, b in zip(scores, scores[1:]):
        assert (a == b) <= (bucket(a, cuts) == bucket(b, cuts))  # equal scores, one bucket
    if len(set(scores)) == 10:
        assert [buckets.count(b) for b in range(5)] == [2, 2, 2, 2, 2]


def test_a_crowded_score_takes_one_bucket_and_the_rest_are_even():
    scores = [0.0] * 40 + [i / 100 for i in range(1, 61)]
    cuts = bucket_cuts(scores)
    sizes = [sum(1 for s in scores if bucket(s, cuts) == b) for b in range(5)]
    assert sizes == [40, 15, 15, 15, 15]
