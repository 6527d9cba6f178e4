"""The built-in Python koans: every fix passes and every broken program fails through the
real verifier; the data is well formed; specs select families and splits."""

from collections import Counter

import pytest

from greenloop.io import DataError
from greenloop.tasks import TaskSpec, load_tasks
from greenloop.tasks.koans import read_family
from greenloop.types import Candidate, Outcome
from greenloop.verify.funnel import VerifyConfig, verify_candidates

KOANS = load_tasks("koans").tasks


def by_family(tasks) -> dict[str, list]:
    families: dict[str, list] = {}
    for task in tasks.values():
        families.setdefault(task.meta["koan_family"], []).append(task)
    return families


def test_every_fix_passes_and_every_broken_program_fails():
    tasks = list(KOANS.values())
    candidates = [Candidate(t.task_id, t.reference, "reference") for t in tasks]
    candidates += [Candidate(t.task_id, t.meta["broken"], "broken") for t in tasks]
    verdicts = verify_candidates(load_tasks("koans"), candidates, VerifyConfig(timeout_s=10, all_tests=True))
    fixed, broken = verdicts[:len(tasks)], verdicts[len(tasks):]
    not_passing = [(t.task_id, v.outcome, v.detail) for t, v in zip(tasks, fixed) if not v.passed]
    assert not_passing == []
    not_failing = [t.task_id for t, v in zip(tasks, broken) if v.outcome is not Outcome.FAILED]
    assert not_failing == []
    assert all(v.tests_passed < v.tests_total for v in broken)


def test_enough_koans_in_enough_families():
    families = by_family(KOANS)
    assert len(KOANS) >= 36 and len(families) >= 4
    assert all(len(tasks) >= 9 for tasks in families.values()), {f: len(t) for f, t in families.items()}


@pytest.mark.parametrize("task_id", sorted(KOANS))
def test_koan_is_well_formed(task_id):
    task = KOANS[task_id]
    family, name = task_id.split("/")[1:]
    assert task.family == "koans" and task.meta["koan_family"] == family and name
    assert task.prompt == task.meta["broken"] and not task.prompt_is_code
    assert task.meta["language"] == "python" and task.meta["split"] in ("train", "eval")
    assert isinstance(task.meta["critical"], bool) and task.meta["hint"].strip()
    assert len(task.tests) >= 4 and all(t.has_expected and t.check is None for t in task.tests)
    for program in (task.prompt, task.reference):
        assert 5 <= len(program.strip().splitlines()) <= 30
        assert f"def {task.entry_point}(" in program
    assert task.prompt != task.reference


def test_splits_hold_a_third_of_each_family_and_a_critical_koan_each():
    for family, tasks in by_family(KOANS).items():
        splits = Counter(t.meta["split"] for t in tasks)
        assert splits["eval"] == len(tasks) // 3 + (len(tasks) % 3 == 2), family
        assert sum(t.meta["critical"] for t in tasks) == 1, family


def test_split_and_family_specs_filter():
    evaluation, training = load_tasks("koans@eval").tasks, load_tasks("koans@train").tasks
    assert {t.meta["split"] for t in evaluation.values()} == {"eval"}
    assert {t.meta["split"] for t in training.values()} == {"train"}
    assert set(evaluation) | set(training) == set(KOANS) and not set(evaluation) & set(training)
    one = load_tasks("koans:off_by_one").tasks
    assert one and {t.meta["koan_family"] for t in one.values()} == {"off_by_one"}
    both = load_tasks("koans:off_by_one@eval").tasks
    assert set(both) == {k for k in one if k in evaluation}
    assert TaskSpec.parse("koans:off_by_one@eval") == TaskSpec("koans", "off_by_one", "eval")


def test_split_is_by_position_so_appending_never_moves_a_koan():
    tasks = by_family(KOANS)["off_by_one"]  # dicts keep file order
    assert [t.meta["split"] for t in tasks[:6]] == ["train", "eval", "train", "train", "eval", "train"]


def test_unknown_family_or_split_is_an_error():
    with pytest.raises(ValueError, match="did you mean off_by_one"):
        load_tasks("koans:off_by_on")
    with pytest.raises(ValueError, match="unknown koan split"):
        load_tasks("koans@test")


def test_malformed_koan_file_names_file_and_line(tmp_path):
    path = tmp_path / "fam.yaml"
    path.write_text("- name: a\n  entry_point: f\n  hint: h\n  broken: x\n  fixed: y\n  tests: []\n"
                    "- name: b\n  entry_point: f\n  hint: h\n  broken: x\n  tests: []\n")
    with pytest.raises(DataError, match=r"fam.yaml:7: field 'fixed': missing"):
        read_family(str(path), list)
    path.write_text("- name: a\n  entry_point: f\n  hint: h: with a colon\n")
    with pytest.raises(DataError, match="not valid YAML"):
        read_family(str(path), list)
