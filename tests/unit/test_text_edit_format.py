import pytest

from greenloop.text.edit_format import (
    EditError,
    apply_edit,
    edit_of,
    edit_prompt,
    number_lines,
)

BROKEN = "def f(xs):\n    t = 0\n    for x in xs\n        t += x\n    print(t)\n"
FIXED = "def f(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n"


def test_edit_round_trip_is_short_and_exact():
    edit = edit_of(BROKEN, FIXED)
    assert edit == "@@ 3,1\n    for x in xs:\n@@ 5,1\n    return t\n"
    assert apply_edit(BROKEN, edit) == FIXED


@pytest.mark.parametrize("fixed", [
    "def f(xs):\n    t = 0\n    for x in xs\n        t += x\n    print(t)\n    return t\n",  # insertion at the end
    "def f(xs):\n    for x in xs\n        t += x\n    print(t)\n",  # deletion
    "# head\n" + BROKEN,  # insertion at the start
])
def test_insertions_and_deletions(fixed):
    assert apply_edit(BROKEN, edit_of(BROKEN, fixed)) == fixed


def test_numbered_prompt_with_the_parser_line_when_it_does_not_parse():
    assert number_lines(BROKEN).splitlines()[2] == "3|     for x in xs"
    assert edit_prompt(BROKEN).endswith("5|     print(t)\n# parser: line 3\n3|     for x in xs\n")
    assert edit_prompt(FIXED) == number_lines(FIXED)


@pytest.mark.parametrize("edit, message", [
    ("return t", "expected '@@ LINE,COUNT'"),
    ("", "no '@@ LINE,COUNT' block"),
    ("@@ 9,1\nx\n", "outside"),
    ("@@ 2,2\na\n@@ 3,1\nb\n", "overlaps"),
])
def test_bad_edits_are_refused(edit, message):
    with pytest.raises(EditError, match=message):
        apply_edit(BROKEN, edit)


def test_blank_lines_after_the_last_block_are_not_inserted():
    assert apply_edit(BROKEN, edit_of(BROKEN, FIXED) + "\n\n") == FIXED


def test_sft_examples_from_tasks_are_broken_to_reference_edits():
    from greenloop.tasks import load_tasks
    from greenloop.train.finetune import read_examples

    examples = read_examples("tasks:koans:off_by_one@train", "edit")
    tasks = sorted(load_tasks("koans:off_by_one@train").tasks.values(), key=lambda t: t.task_id)
    assert len(examples) == len(tasks)
    prompts = {p: c for p, c in examples}
    for task in tasks:
        edit = prompts[edit_prompt(task.meta["broken"])]
        assert apply_edit(task.meta["broken"], edit).strip() == task.reference.strip()
