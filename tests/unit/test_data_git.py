"""`greenloop data mine-git`: the local miner on a repository the test builds, and the
GitHub source offline, through a fake fetch serving canned API answers."""

import ast
import difflib
import gzip
import json
import os
import random
import re
import subprocess
import urllib.parse

import pytest

from greenloop.cli import data as data_cli
from greenloop.cli import main
from greenloop.data import git_mining, github
from greenloop.data.git_mining import FIX_PATTERN, MineGitConfig, mine_git
from greenloop.data.github import GitHubClient, GitHubError, Response, mine_github, rebuild_before

COUNTER_V0 = '''"""Counting things."""


def count(items, target):
    total = 0
    for i in range(len(items) - 1):
        if items[i] == target:
            total += 1
    return total


def helper(x):
    # scale it
    return x * 2


class Box:
    def size(self):
        """How big."""
        return len(self.items)
'''
# the fix: count's range; helper's comment and Box.size's docstring change too (no pairs),
# and a function is added (no counterpart)
COUNTER_V1 = (COUNTER_V0.replace("range(len(items) - 1)", "range(len(items))")
              .replace("# scale it", "# scale it up").replace("How big.", "How big it is.")
              + "\n\ndef added():\n    return 1\n")
COUNTER_V2 = COUNTER_V1.replace("x * 2", "x * 3")
COUNTER_V3 = COUNTER_V2.replace("def count(items, target):", "def count(items, target, start=0):")
COUNTER_V4 = COUNTER_V3.replace("x * 3", "-x * 3")
LATIN = b"# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n"
MODULES = {f"pkg/m{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(4)}


def git(repo, *args, date=None):
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"}
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(repo, message, files, day):
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, date=f"2024-01-{day:02d}T12:00:00+00:00")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Commits, oldest first: c0 root; c1 a fix of `count`; c2 a feature; c3 a fix of a
    non-UTF-8 file and a file that did not parse; c4 a fix too large to mine; c5 "prefix"
    (not a fix); then a fix of `helper` on a branch, merged with a merge commit saying "fix"."""
    root = tmp_path_factory.mktemp("repo")
    git(root, "init", "-q", "-b", "main")
    shas = {"c0": commit(root, "Initial import", {"pkg/counter.py": COUNTER_V0, "pkg/latin.py": LATIN,
                                                  "pkg/broken.py": 'def f():\n    print "x"\n',
                                                  "tests/test_counter.py": "def test_count():\n    pass\n",
                                                  **MODULES}, 1)}
    shas["c1"] = commit(root, "Fix off-by-one in count", {
        "pkg/counter.py": COUNTER_V1, "tests/test_counter.py": "def test_count():\n    assert True\n"}, 2)
    shas["c2"] = commit(root, "Add feature", {"pkg/counter.py": COUNTER_V2}, 3)
    shas["c3"] = commit(root, "Fix crash on bad input", {
        "pkg/latin.py": LATIN + b"other = 'na\xefve'\n", "pkg/broken.py": 'def f():\n    print("x")\n'}, 4)
    shas["c4"] = commit(root, "Fix typos in every module", {p: t.replace("x +", "x -") for p, t in MODULES.items()}, 5)
    shas["c5"] = commit(root, "Add prefix option", {"pkg/counter.py": COUNTER_V3}, 6)
    git(root, "checkout", "-q", "-b", "fix-sign")
    shas["fix_sign"] = commit(root, "Fix wrong sign in helper", {"pkg/counter.py": COUNTER_V4}, 7)
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge branch 'fix-sign' (fixes #3)", "fix-sign",
        date="2024-01-08T12:00:00+00:00")
    return root, shas


def read_shards(out):
    rows = []
    for path in sorted((out / "shards").glob("pairs-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            rows.extend(json.loads(line) for line in fh)
    return rows


def function_source(text, name):
    tree = ast.parse(text)
    node = next(n for n in tree.body if getattr(n, "name", None) == name)
    return "".join(text.splitlines(keepends=True)[node.lineno - 1:node.end_lineno])


@pytest.mark.parametrize("message", ["Fix off-by-one in count", "fixes #12", "Bugfix: empty list", "hotfix",
                                     "Closes issue #7", "Handle crash when empty", "correct a TYPO",
                                     "Return the wrong value no more", "Bug 1234: negative sizes"])
def test_fix_pattern_matches_bug_fixes(message):
    assert re.search(FIX_PATTERN, message)


@pytest.mark.parametrize("message", ["Add feature", "Add prefix option", "Rename suffix", "Improve debug output",
                                     "Use a fixture", "Raise TypeError early", "Merge pull request 12"])
def test_fix_pattern_leaves_other_commits(message):
    assert not re.search(FIX_PATTERN, message)


def test_mines_exactly_the_fixed_functions(repo, tmp_path):
    root, shas = repo
    manifest = mine_git(MineGitConfig(repos=(str(root),), commits_per_shard=2), str(tmp_path / "out"))
    rows = read_shards(tmp_path / "out")
    assert [(r["unit"], r["meta"]["commit"]) for r in rows] == [("helper", shas["fix_sign"]), ("count", shas["c1"])]
    helper, count = rows
    assert count["buggy"] == function_source(COUNTER_V0, "count")
    assert count["fixed"] == function_source(COUNTER_V1, "count")
    assert helper["buggy"] == function_source(COUNTER_V3, "helper")
    assert helper["fixed"] == function_source(COUNTER_V4, "helper")
    for row in rows:
        ast.parse(row["buggy"]), ast.parse(row["fixed"])
        assert (row["bug_type"], row["family"], row["source"], row["path"]) == ("git:fix", "git", f"git:{root.name}",
                                                                                "pkg/counter.py")
    assert count["meta"] == {"commit": shas["c1"], "parent": shas["c0"], "subject": "Fix off-by-one in count",
                             "date": "2024-01-02T12:00:00+00:00"}
    assert "-    for i in range(len(items) - 1):" in count["diff"]
    # c1..c5 and the branch fix; neither the root nor the merge
    assert {k: manifest[k] for k in ("shards", "commits", "matching", "too_large", "no_python", "mined", "files",
                                     "test_files", "pairs")} == {
        "shards": 3, "commits": 6, "matching": 4, "too_large": 1, "no_python": 0, "mined": 3, "files": 4,
        "test_files": 1, "pairs": 2}
    assert manifest["skipped"] == {"does not parse": 1, "not UTF-8": 2}
    report = json.loads((tmp_path / "out" / "shards" / "pairs-00001.report.json").read_text())  # c4, c3
    assert sorted((s["commit"], s["path"], re.split(r" \(|:", s["reason"])[0]) for s in report["skipped_files"]) == sorted([
        (shas["c2"], "pkg/broken.py", "does not parse"), (shas["c2"], "pkg/latin.py", "not UTF-8"),
        (shas["c3"], "pkg/latin.py", "not UTF-8")])


def test_huge_files_are_skipped_and_reported(repo, tmp_path):
    root, _ = repo
    manifest = mine_git(MineGitConfig(repos=(str(root),), max_file_bytes=100), str(tmp_path / "out"))
    assert manifest["pairs"] == 0  # counter.py is over 100 bytes on every side
    assert manifest["skipped"] == {"does not parse": 1, "huge": 4, "not UTF-8": 2}


def test_a_shard_whose_report_is_lost_is_redone_with_identical_output(repo, tmp_path, monkeypatch):
    root, _ = repo
    config = MineGitConfig(repos=(str(root),), commits_per_shard=2)
    out = tmp_path / "out"
    first = mine_git(config, str(out))
    shards = {p.name: gzip.decompress(p.read_bytes()) for p in (out / "shards").glob("*.jsonl.gz")}
    reports = {p.name: p.read_text() for p in (out / "shards").glob("*.report.json")}
    (out / "shards" / "pairs-00002.report.json").unlink()

    redone = []
    real = git_mining.mine_local_shard
    monkeypatch.setattr(git_mining, "mine_local_shard", lambda entry, **kw: redone.append(entry["shard"]) or real(entry, **kw))
    assert mine_git(config, str(out)) == first
    assert redone == ["pairs-00002"]
    assert {p.name: gzip.decompress(p.read_bytes()) for p in (out / "shards").glob("*.jsonl.gz")} == shards
    assert {p.name: p.read_text() for p in (out / "shards").glob("*.report.json")} == reports
    assert json.loads((out / "manifest.json").read_text()) == first


def test_a_moved_branch_does_not_change_a_resumed_run(repo, tmp_path):
    root, _ = repo
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    config = MineGitConfig(repos=(str(clone),), commits_per_shard=2)
    first = mine_git(config, str(tmp_path / "out"))
    (tmp_path / "out" / "manifest.json").unlink()
    (tmp_path / "out" / "shards" / "pairs-00000.report.json").unlink()
    commit(clone, "Fix everything", {"pkg/counter.py": COUNTER_V4.replace("-x", "x")}, 9)
    assert mine_git(config, str(tmp_path / "out")) == first  # the saved plan, not the new head


def test_cli_mines_and_reports(repo, tmp_path, monkeypatch, capsys):
    root, _ = repo
    monkeypatch.setattr(data_cli, "DATA_COMMANDS", ("data_git",))
    out = tmp_path / "out"
    code = main(["data", "mine-git", "--repo", str(root), "--out", str(out), "--workers", "2"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "2 pairs from 3 bug-fix commits" in printed and "not UTF-8: 2" in printed
    assert [r["unit"] for r in read_shards(out)] == ["helper", "count"]
    assert json.loads((out / "run.json").read_text())["command"] == "mine-git"
    # tighter limits: the fix of helper (1 line out, 1 in) stays, count's commit (8 lines) does not
    code = main(["data", "mine-git", "--repo", str(root), "--out", str(out), "--force", "--max-changed-lines", "2",
                 "--max-commits", "3"])
    assert code == 0 and [r["unit"] for r in read_shards(out)] == ["helper"]


@pytest.mark.parametrize("argv, message", [
    (["--repo", "{tmp}"], "not a git repository"),
    (["--repo", "{tmp}/nowhere"], "not a directory"),
    (["--repo", "{repo}", "--pattern", "(fix"], "--pattern"),
    (["--repo", "{repo}", "--max-files", "0"], "--max-files must be at least 1"),
    (["--repo", "{repo}", "--max-pages", "2"], "--max-pages applies to --github"),
    (["--github", "not-a-repo"], "expected OWNER/REPO"),
    (["--repo", "{repo}", "--rev", "no-such-branch"], "no-such-branch"),
])
def test_cli_errors_are_clean(repo, tmp_path, monkeypatch, capsys, argv, message):
    root, _ = repo
    monkeypatch.setattr(data_cli, "DATA_COMMANDS", ("data_git",))
    argv = [a.format(tmp=tmp_path, repo=root) for a in argv]
    assert main(["data", "mine-git", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("greenloop data: error:") and message in err


# ---- GitHub, offline ----------------------------------------------------------------


def hunks(before, after):
    """GitHub's `patch`: a unified diff with 3 lines of context and no file header."""
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True), n=3)
    return "".join(list(lines)[2:]).rstrip("\n")


def test_rebuild_before_against_brute_force():
    rng = random.Random(7)
    words = ["a = 1", "b = 2", "return x", "", "pass", "if y:", "    z()"]
    for _ in range(300):
        before = [rng.choice(words) for _ in range(rng.randint(0, 30))]
        after = list(before)
        for _ in range(rng.randint(1, 4)):
            at = rng.randint(0, len(after))
            op = rng.choice(["insert", "delete", "replace"])
            if op == "insert" or not after or at == len(after):
                after.insert(at, rng.choice(words) + "  # new")
            elif op == "delete":
                del after[at]
            else:
                after[at] = "changed()"
        old, new = "".join(l + "\n" for l in before), "".join(l + "\n" for l in after)
        assert rebuild_before(new, hunks(old, new)) == old


def test_rebuild_before_end_of_file_and_bad_patches():
    patch = "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c"
    assert rebuild_before("a\nc\n", patch) == "a\nb"
    patch = "@@ -1,2 +1,2 @@\n a\n-b\n+c\n\\ No newline at end of file"
    assert rebuild_before("a\nc", patch) == "a\nb\n"
    assert rebuild_before("a\nX\n", "@@ -1,2 +1,2 @@\n a\n-b\n+c") is None  # does not fit: fetch instead
    assert rebuild_before("a\n", "@@ -5,2 +5,2 @@\n a\n-b\n+c") is None


class FakeClock:
    def __init__(self):
        self.now, self.slept = 1_000.0, []

    def sleep(self, seconds):
        self.slept.append(round(seconds, 3))
        self.now += seconds


def ok(body, **headers):
    return Response(200, {k.replace("_", "-"): str(v) for k, v in headers.items()},
                    body if isinstance(body, bytes) else json.dumps(body).encode())


class FakeGitHub:
    """Canned answers by path and `page`/`ref`; a list of answers is served in turn."""

    def __init__(self, routes, fail_on=None):
        self.routes, self.fail_on, self.calls = routes, fail_on, []

    def __call__(self, url, headers):
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        key = parts.path + "".join(f"@{query[k]}" for k in ("page", "ref") if k in query)
        self.calls.append((key, query, headers))
        if key == self.fail_on:
            raise KeyboardInterrupt  # the user's ^C, or a kill
        answer = self.routes.get(key, Response(404, {}, b'{"message": "Not Found"}'))
        if isinstance(answer, list):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        return answer


def listed(sha, message, parents, day):
    return {"sha": sha, "commit": {"message": message, "author": {"date": f"2024-02-{day:02d}T00:00:00Z"}},
            "parents": [{"sha": p} for p in parents]}


M_BEFORE = "def sign(x):\n    return x\n\n\ndef other():\n    return 2\n"
M_AFTER = "def sign(x):\n    return -x\n\n\ndef other():\n    return 2\n"
N_BEFORE = "class C:\n    def f(self, items):\n        return items[1]\n"
N_AFTER = "class C:\n    def f(self, items):\n        return items[0]\n"


def github_routes(per_page=2):
    """Four commits, newest first: s4 fixes m.py (rebuilt from its patch), s3 is a merge, s2
    is not a fix, s1 fixes n.py (no patch: both sides fetched); then an empty page."""
    repo = "/repos/o/r"
    history = [listed("s4", "Fix wrong sign", ["s3"], 4), listed("s3", "Merge fix", ["a", "b"], 3),
               listed("s2", "Add feature", ["s1"], 2), listed("s1", "Fix index", ["s0"], 1)]
    pages = {f"{repo}/commits@{n + 1}": ok(history[n * per_page:(n + 1) * per_page])
             for n in range(len(history) // per_page + 1)}
    return {
        **pages,
        f"{repo}/commits/s4": ok({"files": [{"filename": "pkg/m.py", "status": "modified", "additions": 1,
                                             "deletions": 1, "patch": hunks(M_BEFORE, M_AFTER)},
                                            {"filename": "README.md", "status": "modified", "additions": 9,
                                             "deletions": 0}]}),
        f"{repo}/commits/s1": ok({"files": [{"filename": "pkg/n.py", "status": "modified", "additions": 1,
                                             "deletions": 1}]}),
        f"{repo}/contents/pkg/m.py@s4": ok(M_AFTER.encode()),
        f"{repo}/contents/pkg/n.py@s1": ok(N_AFTER.encode()),
        f"{repo}/contents/pkg/n.py@s0": ok(N_BEFORE.encode()),
    }


def client_for(fake, clock):
    return GitHubClient(fake, token="t0ken", sleep=clock.sleep, clock=lambda: clock.now, notify=lambda m: None)


def test_github_mines_pairs_and_rebuilds_parents_from_patches(tmp_path, monkeypatch):
    monkeypatch.setattr(github, "PER_PAGE", 2)
    fake, clock = FakeGitHub(github_routes()), FakeClock()
    manifest = mine_github(MineGitConfig(github="o/r"), str(tmp_path / "out"), client=client_for(fake, clock))
    rows = read_shards(tmp_path / "out")
    assert [(r["unit"], r["buggy"], r["fixed"], r["meta"]["commit"]) for r in rows] == [
        ("sign", "def sign(x):\n    return x\n", "def sign(x):\n    return -x\n", "s4"),
        ("C.f", "def f(self, items):\n    return items[1]\n", "def f(self, items):\n    return items[0]\n", "s1")]
    assert rows[0]["source"] == "git:o/r" and rows[0]["meta"]["date"] == "2024-02-04T00:00:00Z"
    keys = [key for key, _, _ in fake.calls]
    assert "/repos/o/r/contents/pkg/m.py@s3" not in keys  # rebuilt from the patch
    assert "/repos/o/r/commits/s2" not in keys  # not a fix: no detail fetched
    assert fake.calls[0][2]["Authorization"] == "Bearer t0ken"
    page2 = next(query for key, query, _ in fake.calls if key == "/repos/o/r/commits@2")
    assert page2["sha"] == "s4"  # page 2 lists from the pinned head
    assert {k: manifest[k] for k in ("shards", "listed", "commits", "matching", "mined", "files", "pairs")} == {
        "shards": 3, "listed": 4, "commits": 3, "matching": 2, "mined": 2, "files": 2, "pairs": 2}
    assert "t0ken" not in (tmp_path / "out" / "run.json").read_text()
    assert clock.slept == []


def test_github_waits_for_the_rate_limit_then_goes_on(tmp_path):
    routes = github_routes()
    spent = Response(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1100"},
                     b'{"message": "API rate limit exceeded"}')
    routes["/repos/o/r/commits@1"] = [spent, routes["/repos/o/r/commits@1"]]
    routes["/repos/o/r/commits/s4"] = [Response(502, {}, b"bad gateway"), Response(503, {}, b""),
                                       routes["/repos/o/r/commits/s4"]]
    clock = FakeClock()
    manifest = mine_github(MineGitConfig(github="o/r"), str(tmp_path / "out"), client=client_for(FakeGitHub(routes), clock))
    assert manifest["pairs"] == 1  # page 1 only (2 < 100 commits listed: the end)
    assert clock.slept == [101.0, 1.0, 2.0]  # until the reset (+1 s), then backing off on 5xx


def test_github_client_limits():
    clock = FakeClock()
    last = ok({"a": 1}, x_ratelimit_remaining=0, x_ratelimit_reset=1500)
    fake = FakeGitHub({"/x": [Response(429, {"retry-after": "30"}, b"{}"), last], "/y": ok({"b": 2}),
                       "/forbidden": Response(403, {}, b'{"message": "Resource not accessible"}')})
    client = client_for(fake, clock)
    assert client.get_json("/x") == {"a": 1} and clock.slept == [30.0]
    assert client.get_json("/y") == {"b": 2}  # the limit was spent: it waited for the reset first
    assert clock.slept == [30.0, 471.0]
    with pytest.raises(GitHubError, match="403 Resource not accessible"):
        client.get("/forbidden")
    assert client.get("/missing", missing_ok=True) is None
    assert len(fake.calls) == 5  # a refusal that waiting cannot help is not retried


@pytest.mark.parametrize("per_page, asked_again", [
    (2, ["/repos/o/r/commits/s1", "/repos/o/r/contents/pkg/n.py@s0", "/repos/o/r/contents/pkg/n.py@s1",
         "/repos/o/r/commits@3"]),  # page 1 done; page 2 listed, its fix cut off
    (4, ["/repos/o/r/commits/s1", "/repos/o/r/contents/pkg/n.py@s0", "/repos/o/r/contents/pkg/n.py@s1",
         "/repos/o/r/commits@2"]),  # one full page: s4 finished, s1 cut off
])
def test_github_resumes_without_refetching_finished_work(tmp_path, monkeypatch, per_page, asked_again):
    monkeypatch.setattr(github, "PER_PAGE", per_page)
    config = MineGitConfig(github="o/r")
    mine_github(config, str(tmp_path / "whole"), client=client_for(FakeGitHub(github_routes(per_page)), FakeClock()))

    out = str(tmp_path / "out")
    killed = FakeGitHub(github_routes(per_page), fail_on="/repos/o/r/contents/pkg/n.py@s0")
    with pytest.raises(KeyboardInterrupt):
        mine_github(config, out, client=client_for(killed, FakeClock()))
    assert not (tmp_path / "out" / "manifest.json").exists()

    again = FakeGitHub(github_routes(per_page))
    manifest = mine_github(config, out, client=client_for(again, FakeClock()))
    assert [key for key, _, _ in again.calls] == asked_again
    assert read_shards(tmp_path / "out") == read_shards(tmp_path / "whole")
    assert manifest == json.loads((tmp_path / "whole" / "manifest.json").read_text())
    assert not (tmp_path / "out" / "github-commits").exists()


def test_github_a_commit_the_api_will_not_serve_is_skipped_and_reported(tmp_path):
    routes = github_routes(per_page=4)
    routes["/repos/o/r/commits/s1"] = Response(422, {}, b'{"message": "diff too large"}')
    manifest = mine_github(MineGitConfig(github="o/r"), str(tmp_path / "out"),
                           client=client_for(FakeGitHub(routes), FakeClock()))
    assert manifest["pairs"] == 1 and manifest["skipped"] == {"commit refused by the API": 1}
    report = json.loads((tmp_path / "out" / "shards" / "pairs-00000.report.json").read_text())
    assert report["skipped_files"][0]["commit"] == "s1" and "diff too large" in report["skipped_files"][0]["reason"]
