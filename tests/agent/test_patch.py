import pytest

from greenloop.agent.patch import PatchError, apply_patch, parse_diff
from greenloop.data.pairs import unified_diff

FILE = "def f(n):\n    total = 0\n    for i in range(n):\n        total += i\n    return total\n"


def test_round_trip_of_a_made_diff():
    after = FILE.replace("range(n)", "range(n + 1)")
    assert apply_patch(FILE, unified_diff(FILE, after, context=3)) == after


def test_drifted_line_numbers_and_missing_headers_still_apply():
    diff = "@@ -9,1 +9,1 @@\n-    for i in range(n):\n+    for i in range(1, n):\n"
    assert "range(1, n)" in apply_patch(FILE, diff)


def test_trailing_whitespace_slip_is_forgiven():
    diff = "@@ -5 +5 @@\n-    return total   \n+    return total * 2\n"
    assert apply_patch(FILE, diff).endswith("return total * 2\n")


def test_hunk_that_does_not_fit_names_the_diff_line():
    diff = "--- a/main.py\n+++ b/main.py\n@@ -2,1 +2,1 @@\n-    totl = 0\n+    total = 1\n"
    with pytest.raises(PatchError, match=r"patch line 3: .*not in the file.*totl"):
        apply_patch(FILE, diff)


@pytest.mark.parametrize("diff, message", [
    ("just some prose", "expected a '@@"),
    ("", "no hunks"),
    ("@@ -1 +1 @@\n*bad line\n", "patch line 2: a hunk line must start"),
    ("@@ -1 +1 @@\n", "empty hunk"),
])
def test_malformed_diffs_are_refused_clearly(diff, message):
    with pytest.raises(PatchError, match=message):
        parse_diff(diff)


def test_two_hunks_apply_in_order():
    diff = ("@@ -2 +2 @@\n-    total = 0\n+    total = 1\n"
            "@@ -4 +4,2 @@\n-        total += i\n+        total *= i\n+        total += 0\n")
    after = apply_patch(FILE, diff)
    assert after.splitlines()[1] == "    total = 1" and after.splitlines()[3:5] == ["        total *= i", "        total += 0"]


def test_a_pure_insertion_lands_after_the_named_line():
    import difflib

    before = "a\nb\nc\nd\n"
    after = "a\nb\nX\nc\nd\n"
    diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0))
    assert "@@ -2,0 +3 @@" in diff
    assert apply_patch(before, diff) == after
