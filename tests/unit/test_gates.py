import math

import pytest

from greenloop.evaluate.cycle_metrics import TaskResult, repeat_error_rate, summarise
from greenloop.evaluate.gates import GateConfig, binomial_tail, gate, paired_test


def runs(before_pass, after_pass, n=20):
    ids = [f"t{i}" for i in range(n)]
    return ({t: t in before_pass for t in ids}, {t: t in after_pass for t in ids}, {t: "f" + t[-1] for t in ids})


def test_exact_mcnemar_matches_the_binomial_by_hand():
    test = paired_test({"a": 0, "b": 0, "c": 0, "d": 1, "e": 1}, {"a": 1, "b": 1, "c": 1, "d": 1, "e": 0})
    assert (test.gains, test.losses, test.both, test.neither) == (3, 1, 1, 0)
    assert test.p_better == pytest.approx(5 / 16)       # P(X >= 3), X ~ Bin(4, 1/2)
    assert test.p_worse == pytest.approx(15 / 16)
    assert binomial_tail(6, 6) == pytest.approx(1 / 64)
    assert binomial_tail(0, 0) == 1.0 and math.isclose(binomial_tail(7, 10), 176 / 1024)


def test_a_worse_checkpoint_is_rolled_back_with_the_reason():
    before, after, fam = runs({"t1", "t2", "t3", "t4"}, {"t1", "t5"})
    decision = gate(before, after, fam, config=GateConfig(family_margin=1.0))
    assert not decision.promote
    assert "3 tasks lost, 1 gained" in decision.summary()


def test_min_gain_demands_a_net_gain():
    before, after, fam = runs({"t1"}, {"t1", "t2"})
    assert gate(before, after, fam, config=GateConfig(family_margin=1.0)).promote
    decision = gate(before, after, fam, config=GateConfig(family_margin=1.0, min_gain=2))
    assert not decision.promote and "needs a net gain of 2" in decision.summary()


def test_a_better_checkpoint_is_promoted():
    before, after, fam = runs({"t1"}, {"t1", "t2", "t3"})
    decision = gate(before, after, fam, config=GateConfig(family_margin=1.0))
    assert decision.promote and decision.reasons == []


def test_family_drop_and_critical_regression_block_promotion():
    before, after, fam = runs({"t1", "t11"}, {"t2", "t3", "t4", "t11"})
    decision = gate(before, after, fam, critical={"t1"}, config=GateConfig(family_margin=0.4))
    assert not decision.promote
    assert any("family f1 dropped" in r for r in decision.reasons)
    assert any("critical tasks regressed: t1" in r for r in decision.reasons)


def test_paired_test_refuses_different_task_sets():
    with pytest.raises(ValueError, match="same tasks"):
        paired_test({"a": True}, {"b": True})


def test_repeat_error_rate_counts_only_tasks_failing_twice():
    prev = {"a": TaskResult("a", "x", False, None, "E1"), "b": TaskResult("b", "x", False, None, "E2"),
            "c": TaskResult("c", "y", False, None, "E3")}
    cur = {"a": TaskResult("a", "x", False, None, "E1"), "b": TaskResult("b", "x", False, None, "E9"),
           "c": TaskResult("c", "y", True, 2)}
    assert repeat_error_rate(cur, prev) == 0.5
    summary = summarise(cur, prev)
    assert summary["pass_rate"] == pytest.approx(1 / 3) and summary["median_steps_to_green"] == 2
    assert summary["family_pass_rates"] == {"x": 0.0, "y": 1.0}
