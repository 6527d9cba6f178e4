import pytest

from greenloop.tasks import load_tasks
from greenloop.tasks.repair_tasks import split_of
from greenloop.types import Candidate
from greenloop.verify.funnel import VerifyConfig, verify_candidates
from tests.repair_fixture import mutate_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return mutate_folder(tmp_path_factory.mktemp("repair"))


def test_each_mutant_is_a_task_judged_by_its_original_tests(folder):
    tasks = load_tasks(f"repair:dir:{folder}")
    assert len(tasks) >= 12
    tasks_list = sorted(tasks.tasks.values(), key=lambda t: t.task_id)
    fixes = [Candidate(t.task_id, t.reference) for t in tasks_list]
    broken = [Candidate(t.task_id, t.prompt) for t in tasks_list]
    verdicts = verify_candidates(tasks, fixes + broken, VerifyConfig(workers=1, timeout_s=5))
    assert all(v.passed for v in verdicts[:len(fixes)])
    assert not any(v.passed for v in verdicts[len(fixes):])
    task = tasks_list[0]
    assert task.prompt == task.meta["broken"] and not task.prompt_is_code
    assert task.meta["bug_family"] in ("logic", "syntax") and task.meta["source_task"].startswith("fx/")


def test_splits_keep_each_source_function_on_one_side(folder):
    train = load_tasks(f"repair:dir:{folder}@train").tasks.values()
    frozen = load_tasks(f"repair:dir:{folder}@eval").tasks.values()
    assert {t.meta["source_task"] for t in train}.isdisjoint({t.meta["source_task"] for t in frozen})
    assert all(split_of(t.meta["source_task"]) == "eval" for t in frozen)
    with pytest.raises(ValueError, match="splits train and eval"):
        load_tasks(f"repair:dir:{folder}@test")


def test_a_folder_made_from_code_without_tests_is_refused(tmp_path):
    from greenloop.data.mutate import MutateConfig, run_mutate

    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text("def f(x):\n    return x + 1\n")
    run_mutate(MutateConfig(source=f"dir:{src}"), str(tmp_path / "out"), workers=1)
    with pytest.raises(ValueError, match="not a task source with tests"):
        load_tasks(f"repair:dir:{tmp_path / 'out'}")
