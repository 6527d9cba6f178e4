"""Every registered task family loads, and its tasks are well formed."""

import json
from pathlib import Path

import pytest

from greenloop.tasks import TaskSpec, load_tasks, task_families

MBPP = Path(__file__).resolve().parents[3] / "shared" / "data" / "mbpp" / "mbpp.jsonl"
MBPP_ROWS = [
    {"task_id": 2, "text": "Write a function to find the shared elements.", "code": "def similar_elements(a, b):\r\n  return tuple(set(a) & set(b))",
     "test_setup_code": "", "test_list": ["assert set(similar_elements((3, 4), (4, 5))) == set((4,))"], "challenge_test_list": []},
    {"task_id": 11, "text": "Remove first and last occurrence of a char.", "code": "def remove_Occ(s, ch):\r\n  return s.replace(ch, '')",
     "test_setup_code": "", "test_list": ["assert remove_Occ(\"hello\",\"l\") == \"heo\""], "challenge_test_list": []},
]


def spec_for(name: str, tmp_path: Path) -> str:
    if name == "humaneval":
        return "humaneval"
    if name == "mbpp":
        path = tmp_path / "mbpp.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in MBPP_ROWS))
        return f"mbpp:{path}"
    if name == "jsonl":
        path = tmp_path / "t.jsonl"
        path.write_text(json.dumps({"task_id": "x/1", "prompt": "def f(a):\n", "entry_point": "f",
                                    "tests": [{"args": [1], "expected": 1}]}) + "\n")
        return f"jsonl:{path}"
    if name in ("koans", "rust_koans", "kernels"):  # built in: no data to write
        return name
    if name == "repair":
        from tests.repair_fixture import mutate_folder

        return f"repair:dir:{mutate_folder(tmp_path)}"
    raise AssertionError(f"add a spec for the new task family {name!r} to this test")


@pytest.mark.parametrize("name", task_families.names())
def test_family_loads_well_formed_tasks(name, tmp_path):
    tasks = load_tasks(spec_for(name, tmp_path))
    assert len(tasks) > 0
    for task in tasks.tasks.values():
        # kernel tasks are judged against their reference model, not test cases
        assert task.task_id and task.entry_point and (task.tests or task.family == "kernels")
        assert task.family == name
    assert all(Path(p).exists() for p in tasks.data_paths)


def test_mbpp_splits_and_entry_points(tmp_path):
    spec = spec_for("mbpp", tmp_path)
    assert list(load_tasks(spec + "@test").tasks) == ["Mbpp/11"]
    task = load_tasks(spec + "@prompt").tasks["Mbpp/2"]
    assert task.entry_point == "similar_elements" and "\r" not in task.reference
    with pytest.raises(ValueError, match="unknown MBPP split"):
        load_tasks(spec + "@dev")


@pytest.mark.skipif(not MBPP.exists(), reason="../shared/data/mbpp not present")
def test_full_mbpp_file_has_standard_splits():
    counts = {}
    for task in load_tasks(f"mbpp:{MBPP}").tasks.values():
        counts[task.meta["split"]] = counts.get(task.meta["split"], 0) + 1
    assert counts == {"prompt": 10, "test": 500, "validation": 90, "train": 374}


def test_spec_parsing():
    assert TaskSpec.parse("mbpp:/a/b.jsonl@test") == TaskSpec("mbpp", "/a/b.jsonl", "test")
    assert TaskSpec.parse("humaneval") == TaskSpec("humaneval")
    assert TaskSpec.parse("jsonl:x.jsonl") == TaskSpec("jsonl", "x.jsonl", None)
    assert TaskSpec.parse("koans@eval") == TaskSpec("koans", None, "eval")
    assert TaskSpec.parse("rust_koans:borrow_checker@train") == TaskSpec("rust_koans", "borrow_checker", "train")
