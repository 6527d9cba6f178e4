import itertools
import json
import random
from collections import Counter

import pytest

from greenloop.io import DataError
from greenloop.loop.curriculum import AdaptiveCurriculum


def with_history(histories: dict[str, list[bool]], **settings) -> AdaptiveCurriculum:
    curriculum = AdaptiveCurriculum(**settings)
    curriculum.update_many(histories)
    return curriculum


def test_rate_is_laplace_over_the_recent_attempts():
    rng = random.Random(1)
    curriculum = AdaptiveCurriculum(window=100)
    assert curriculum.rate("never-seen") == 0.5
    for task in range(20):
        outcomes = [rng.random() < 0.3 for _ in range(rng.randrange(0, 30))]
        curriculum.update_many({f"t{task}": outcomes})
        assert curriculum.rate(f"t{task}") == pytest.approx((sum(outcomes) + 1) / (len(outcomes) + 2))


def test_only_the_last_window_attempts_count():
    curriculum = with_history({"t": [False, False, True, True, True, True]}, window=4, min_attempts=2)
    assert curriculum.attempts("t") == [True] * 4
    assert curriculum.rate("t") == pytest.approx(5 / 6) and curriculum.standing("t") == "above"


def test_weights_follow_the_documented_rule():
    curriculum = with_history({"new": [True], "even": [True, False], "solved": [True] * 6, "hopeless": [False] * 6})
    assert curriculum.weight("new") == 1.0 and curriculum.standing("new") == "unknown"
    assert curriculum.weight("even") == pytest.approx(2.0)  # p̂ = 1/2: 1 + 4·½·½
    assert curriculum.weight("solved") == curriculum.weight("hopeless") == 0.1
    edge = with_history({"t": [True, True, True]})  # p̂ = 4/5 = band[1]: still in band
    assert edge.standing("t") == "in_band" and edge.weight("t") == pytest.approx(1 + 4 * 0.8 * 0.2)
    assert curriculum.status() == {"in_band": 1, "below": 1, "above": 1, "unknown": 1}
    assert curriculum.status(["even", "other"]) == {"in_band": 1, "below": 0, "above": 0, "unknown": 1}


def test_in_band_tasks_are_drawn_far_more_often_than_out_of_band_ones():
    in_band = {f"mid{i}": [True, False] * 3 for i in range(5)}
    out_of_band = {f"done{i}": [True] * 8 for i in range(5)} | {f"stuck{i}": [False] * 8 for i in range(5)}
    curriculum = with_history({**in_band, **out_of_band}, seed=3)
    counts = Counter(t for _ in range(2000) for t in curriculum.sample([*in_band, *out_of_band], 3))
    drawn_in = sum(counts[t] for t in in_band) / len(in_band)
    drawn_out = sum(counts[t] for t in out_of_band) / len(out_of_band)
    assert drawn_in > 8 * drawn_out > 0  # weights 2 against 0.1


def test_draws_match_one_at_a_time_weighted_sampling():
    """Brute force: the exact probability of each pair when tasks are drawn one by one,
    each with probability weight / weight left."""
    curriculum = with_history({"a": [True, False], "b": [True] * 5, "c": [True, True], "d": []}, seed=7)
    weights = {t: curriculum.weight(t) for t in "abcd"}
    total = sum(weights.values())
    exact = {}
    for first, second in itertools.permutations(weights, 2):
        p = weights[first] / total * weights[second] / (total - weights[first])
        exact[frozenset((first, second))] = exact.get(frozenset((first, second)), 0) + p
    draws = 20000
    seen = Counter(frozenset(curriculum.sample("abcd", 2)) for _ in range(draws))
    for pair, p in exact.items():
        assert seen[pair] / draws == pytest.approx(p, abs=0.015)


def test_explore_re_probes_a_solved_task_which_re_enters_the_band_after_failures():
    curriculum = with_history({"solved": [True] * 16, "a": [True, False], "b": [True, False]}, seed=0)
    assert curriculum.standing("solved") == "above"
    draws = [curriculum.sample(["solved", "a", "b"], 1)[0] for _ in range(500)]
    assert "solved" in draws and draws.count("solved") < 100
    for _ in range(3):  # the policy forgot it: p̂ = (13 + 1) / 18 after three failures
        curriculum.update("solved", False)
    assert curriculum.standing("solved") == "in_band" and curriculum.weight("solved") > 1
    never = with_history({"solved": [True] * 16, "a": [True, False], "b": [True, False]}, explore=0.0)
    assert all("solved" not in never.sample(["solved", "a", "b"], 2) for _ in range(200))
    assert set(never.sample(["solved", "a", "b"], 3)) == {"solved", "a", "b"}  # drawn when nothing else is left


def test_draws_are_deterministic_for_a_seed_and_history():
    histories = {f"t{i}": [i % 2 == 0, i % 3 == 0, True] for i in range(30)}
    one, two = with_history(histories, seed=5), with_history(histories, seed=5)
    ids = sorted(histories)
    first = [one.sample(ids, 7) for _ in range(5)]
    assert first == [two.sample(list(reversed(ids)), 7) for _ in range(5)]  # the order ids come in is irrelevant
    other = with_history(histories, seed=6)
    assert first != [other.sample(ids, 7) for _ in range(5)]


def test_sample_is_without_replacement_and_takes_all_when_k_is_larger():
    curriculum = AdaptiveCurriculum()
    drawn = curriculum.sample(["a", "b", "c", "a", "b"], 2)
    assert len(drawn) == len(set(drawn)) == 2 and set(drawn) <= {"a", "b", "c"}
    assert sorted(curriculum.sample(["a", "b", "c", "a"], 10)) == ["a", "b", "c"]
    assert curriculum.sample(["a"], 0) == [] and curriculum.sample([], 3) == []
    with pytest.raises(ValueError, match="k must be >= 0"):
        curriculum.sample(["a"], -1)


def test_none_is_not_an_attempt():
    curriculum = AdaptiveCurriculum()
    curriculum.update("t", None)
    assert curriculum.attempts("t") == [] and curriculum.status() == {"in_band": 0, "below": 0, "above": 0, "unknown": 0}
    curriculum.update_many({"t": [True, None, False, None]})
    assert curriculum.attempts("t") == [True, False] and curriculum.rate("t") == 0.5
    with pytest.raises(TypeError, match="True, False or None"):
        curriculum.update("t", 1)


@pytest.mark.parametrize("settings, message", [
    ({"band": (0.8, 0.2)}, "band"), ({"window": 0}, "window"), ({"explore": -0.1}, "explore"),
    ({"min_attempts": 20}, "min_attempts"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=f"curriculum {message}"):
        AdaptiveCurriculum(**settings)


def test_save_and_load_resume_with_identical_draws(tmp_path):
    histories = {f"t{i}": [i % 2 == 0] * (i % 5) + [i % 3 == 0] for i in range(40)}
    curriculum = with_history(histories, band=(0.3, 0.7), window=8, explore=0.05, seed=11)
    curriculum.meta = {"through_cycle": 2}
    ids = sorted(histories)
    curriculum.sample(ids, 10)  # the generator has moved on: that must be saved too
    path = tmp_path / "state" / "curriculum.json"
    curriculum.save(path)
    assert not [p for p in path.parent.iterdir() if p.name != "curriculum.json"]  # no temporary file left
    resumed = AdaptiveCurriculum.load(path)
    assert resumed.to_dict() == curriculum.to_dict() and resumed.meta == {"through_cycle": 2}
    for step in range(5):
        assert resumed.sample(ids, 10) == curriculum.sample(ids, 10)
        for task in ids[step::5]:
            resumed.update(task, step % 2 == 0)
            curriculum.update(task, step % 2 == 0)


def _saved(tmp_path, change) -> str:
    data = with_history({"t": [True, False]}).to_dict()
    change(data)
    path = tmp_path / "curriculum.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("change, field", [
    (lambda d: d.pop("history"), "history"),
    (lambda d: d.update(history={"t": [True, "yes"]}), "history.t"),
    (lambda d: d.update(history={"t": [True] * 17}), "history.t"),
    (lambda d: d.update(band=[0.2]), "band"),
    (lambda d: d.update(band=[0.9, 0.1]), "band"),
    (lambda d: d.update(window="16"), "window"),
    (lambda d: d.update(min_attempts=True), "min_attempts"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d.update(rng=[3, [1, 2], None]), "rng"),
    (lambda d: d.update(rng="seed"), "rng"),
])
def test_a_bad_file_names_the_file_and_the_field(tmp_path, change, field):
    path = _saved(tmp_path, change)
    with pytest.raises(DataError) as err:
        AdaptiveCurriculum.load(path)
    assert err.value.path == path and err.value.field == field and path in str(err.value)


def test_unreadable_or_missing_files_name_the_file(tmp_path):
    path = tmp_path / "curriculum.json"
    path.write_text('{"version": 1,,}')
    with pytest.raises(DataError, match=f"{path}:1: invalid JSON"):
        AdaptiveCurriculum.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a JSON object"):
        AdaptiveCurriculum.load(path)
    with pytest.raises(DataError, match="file not found"):
        AdaptiveCurriculum.load(tmp_path / "missing.json")
