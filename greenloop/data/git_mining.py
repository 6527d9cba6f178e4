"""Bug-fix commits of local git repositories, mined into function-level repair pairs.

`greenloop data mine-git --repo PATH` works in three steps:

1. Plan: `git rev-list` lists the non-merge commits that have a parent, newest first
   (`--since`, `--max-commits` applied), cut into shards of 200. The plan is saved in the
   output folder (`plan.json`), so a resumed run works on the same commits even when the
   branch has moved since.
2. Per shard, one `git log` reads each commit's message and per-file line counts. A commit
   is mined when its whole message matches the bug-fix pattern (`FIX_PATTERN` by default)
   and its change is small: at most `max_files` changed non-test `.py` files with at most
   `max_changed_lines` lines added plus deleted in them. Test files are never mined (a
   test edited by a fix is not a bug fix) and do not count against the limits.
3. For each changed file one `git cat-file --batch` process (one per shard) gives the file
   at the parent and at the commit. Both are cut into functions (`file_units`), functions
   are matched by qualified name, and each one whose code changed becomes a pair: buggy =
   the parent's, fixed = the commit's. Changes to whitespace, comments or docstrings alone
   do not count; added, deleted and renamed functions or files have no counterpart and
   are left out.

A file side that is huge, not UTF-8 or does not parse is skipped and listed in the
shard's report with its commit, path and reason; it never stops the run. The GitHub
source (`greenloop.data.github`) selects commits the same way and reuses steps 2-3 through
`select_commit` and `mine_commit`.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import subprocess
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from greenloop.data.pairs import make_pair
from greenloop.data.shards import ShardedRun, run_parallel, shard_names, write_json
from greenloop.data.units import MAX_FILE_BYTES, CodeUnit, SkipFile, file_units

# Words that mark a bug fix, as whole words so that "prefix", "suffix", "fixture",
# "debug" and "TypeError" do not count; searched in the whole message, case-insensitive.
FIX_PATTERN = (r"(?i)\b(?:fix(?:e[sd]|ing)?|(?:bug|hot)fix(?:es|ed)?|bugs?|issue\s*#?\d+|errors?"
               r"|crash(?:es|ed|ing)?|regressions?|typos?|wrong(?:ly)?|incorrect(?:ly)?|faulty"
               r"|broken|mistakes?)\b")
COMMITS_PER_SHARD = 200
COUNT_FIELDS = ("commits", "matching", "too_large", "no_python", "mined", "files", "test_files", "pairs")
Blob = bytes | None
ReadBlob = Callable[[str, str], Blob]  # (commit sha, path) -> the file's bytes, None when absent


@dataclass(frozen=True)
class MineGitConfig:
    """What `greenloop data mine-git` mines: local repositories or one GitHub repository."""

    repos: tuple[str, ...] = ()  # local repositories (paths)
    github: str | None = None  # OWNER/REPO, mined through the REST API instead
    rev: str | None = None  # where history is walked back from (default: HEAD / the default branch)
    pattern: str = FIX_PATTERN  # Python regex searched in the whole commit message
    max_files: int = 3  # changed non-test .py files per commit, at most
    max_changed_lines: int = 30  # lines added + deleted in them, at most
    since: str | None = None  # only commits after this date (git's formats; ISO 8601 for GitHub)
    max_commits: int | None = None  # local: the newest N commits of each repository
    max_pages: int | None = None  # GitHub: pages of 100 commits, at most
    max_file_bytes: int = MAX_FILE_BYTES  # a larger file side is skipped as huge
    commits_per_shard: int = COMMITS_PER_SHARD

    def __post_init__(self):
        if bool(self.repos) == bool(self.github):
            raise ValueError("give --repo PATH (one or more) or --github OWNER/REPO, not both")
        if self.github and not re.fullmatch(r"[\w.-]+/[\w.-]+", self.github):
            raise ValueError(f"--github {self.github!r}: expected OWNER/REPO")
        if self.github and self.max_commits is not None:
            raise ValueError("--max-commits applies to --repo; with --github use --max-pages")
        if self.repos and self.max_pages is not None:
            raise ValueError("--max-pages applies to --github; with --repo use --max-commits")
        for name in ("max_files", "max_changed_lines", "max_commits", "max_pages", "max_file_bytes",
                     "commits_per_shard"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"--pattern {self.pattern!r}: {exc}") from None

    def run_config(self) -> dict[str, Any]:
        """The config as recorded in run.json (repositories as absolute paths)."""
        return {**asdict(self), "repos": [os.path.abspath(os.path.expanduser(r)) for r in self.repos]}


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parent: str
    date: str  # author date, ISO 8601
    message: str
    files: tuple[tuple[str, int], ...]  # (path, lines added + deleted), in path order

    @property
    def subject(self) -> str:
        return self.message.strip().split("\n", 1)[0]


@dataclass
class MiningReport:
    """A shard's counts, and every skipped file side with its reason."""

    commits: int = 0  # looked at (non-merge, with a parent)
    matching: int = 0  # message matches the pattern
    too_large: int = 0  # matching, but over --max-files / --max-changed-lines
    no_python: int = 0  # matching, but no non-test .py file changed
    mined: int = 0  # matching and small: their files were read
    files: int = 0  # files present on both sides
    test_files: int = 0  # test files of mined commits, left alone
    pairs: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> file sides
    skipped_files: list[dict[str, str]] = field(default_factory=list)

    def skip(self, commit: str, path: str, reason: str) -> None:
        kind = re.split(r" \(|:", reason, maxsplit=1)[0]
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        self.skipped_files.append({"commit": commit, "path": path, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "skipped": dict(sorted(self.skipped.items()))}


def merge_reports(reports: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Totals of shard reports: counts summed, skip reasons counted (paths stay in the shards)."""
    total: dict[str, Any] = {name: 0 for name in COUNT_FIELDS}
    skipped: dict[str, int] = {}
    for report in reports:
        for name in COUNT_FIELDS:
            total[name] += report.get(name, 0)
        for reason, count in report.get("skipped", {}).items():
            skipped[reason] = skipped.get(reason, 0) + count
    return {**total, "skipped": dict(sorted(skipped.items()))}


def is_test_file(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    return (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
            or any(p in ("test", "tests", "testing") for p in parts[:-1]))


def select_commit(message: str, files: Iterable[tuple[str, int]], config: MineGitConfig,
                  report: MiningReport) -> list[str]:
    """The .py files to mine from a commit (empty when it is not mined), counting why not."""
    report.commits += 1
    if not re.search(config.pattern, message):
        return []
    report.matching += 1
    python = [(path, lines) for path, lines in files if path.endswith(".py")]
    code = sorted((path, lines) for path, lines in python if not is_test_file(path))
    if not code:
        report.no_python += 1
        return []
    if len(code) > config.max_files or sum(lines for _, lines in code) > config.max_changed_lines:
        report.too_large += 1
        return []
    report.mined += 1
    report.test_files += len(python) - len(code)
    return [path for path, _ in code]


def mine_commit(commit: CommitInfo, paths: list[str], read_blob: ReadBlob, source: str,
                max_file_bytes: int, report: MiningReport) -> list[dict[str, Any]]:
    """Pairs from one commit's files: every function both sides have whose code changed."""
    meta = {"commit": commit.sha, "parent": commit.parent, "subject": commit.subject, "date": commit.date}
    pairs: list[dict[str, Any]] = []
    for path in paths:
        sides: list[list[CodeUnit] | None] = []  # None: skipped
        present = True
        for sha in (commit.parent, commit.sha):
            try:
                raw = read_blob(sha, path)
                present = present and raw is not None
                sides.append([] if raw is None else file_units(path, decode_source(raw, max_file_bytes)))
            except SkipFile as exc:
                report.skip(sha, path, str(exc))
                sides.append(None)
        if not present:  # added or deleted in this commit: nothing to pair with
            continue
        report.files += 1
        if sides[0] is not None and sides[1] is not None:
            pairs.extend(changed_function_pairs(sides[0], sides[1], path, source, meta))
    report.pairs += len(pairs)
    return pairs


def decode_source(raw: bytes, max_bytes: int = MAX_FILE_BYTES) -> str:
    if len(raw) > max_bytes:
        raise SkipFile(f"huge ({len(raw)} bytes > {max_bytes})")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise SkipFile(f"not UTF-8 (byte {exc.start})") from None


def changed_function_pairs(before: list[CodeUnit], after: list[CodeUnit], path: str, source: str,
                           meta: dict[str, Any]) -> list[dict[str, Any]]:
    old = _by_name(before)
    pairs = []
    for key, unit in _by_name(after).items():
        prior = old.get(key)
        if prior is None or prior.source == unit.source or code_shape(prior.source) == code_shape(unit.source):
            continue
        pairs.append(make_pair(bug_type="git:fix", family="git", source=source, path=path, unit=unit.name,
                               buggy=prior.source, fixed=unit.source, meta=meta))
    return pairs


def _by_name(units: list[CodeUnit]) -> dict[str, CodeUnit]:
    """Units keyed by qualified name; a name defined more than once (a property's getter and
    setter) by name and occurrence, so it matches only when both sides define it as often."""
    counts: dict[str, int] = {}
    for unit in units:
        counts[unit.name] = counts.get(unit.name, 0) + 1
    keyed, seen = {}, {}
    for unit in units:
        if counts[unit.name] == 1:
            keyed[unit.name] = unit
        else:
            seen[unit.name] = seen.get(unit.name, -1) + 1
            keyed[f"{unit.name}#{seen[unit.name]}/{counts[unit.name]}"] = unit
    return keyed


def code_shape(source: str) -> str:
    """The code with whitespace, comments and docstrings left out: equal shapes mean a change
    a repair model has nothing to learn from."""
    with warnings.catch_warnings():  # old code's invalid escapes: not the user's business
        warnings.simplefilter("ignore")
        tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


# ---- local repositories -------------------------------------------------------------


def git(repo: str, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", repo, *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise ValueError("git is not installed (not found on PATH)") from None
    if done.returncode != 0:
        raise ValueError(f"git {args[0]} in {repo}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


_CAT_FILE_HEADER = re.compile(rb"[0-9a-f]{40,64} (\w+) (\d+)\n")


class BlobReader:
    """One `git cat-file --batch` process answering `SHA:PATH` requests one at a time (a
    subprocess per file would cost more than the mining)."""

    def __init__(self, repo: str, max_bytes: int = MAX_FILE_BYTES):
        self.max_bytes = max_bytes
        self.proc = subprocess.Popen(["git", "-C", repo, "cat-file", "--batch"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def read(self, sha: str, path: str) -> Blob:
        if "\n" in path:
            raise SkipFile("path holds a newline")
        self.proc.stdin.write(f"{sha}:{path}\n".encode("utf-8", "surrogateescape"))
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise OSError(f"git cat-file stopped answering (at {sha}:{path})")
        found = _CAT_FILE_HEADER.match(line)
        if not found:  # "<object> missing": the file is absent on this side
            return None
        kind, size = found[1], int(found[2])
        if size > self.max_bytes:
            left = size + 1
            while left > 0:  # read past it without holding it
                chunk = self.proc.stdout.read(min(left, 1 << 20))
                if not chunk:
                    raise OSError(f"git cat-file stopped answering (at {sha}:{path})")
                left -= len(chunk)
            raise SkipFile(f"huge ({size} bytes > {self.max_bytes})")
        data = self.proc.stdout.read(size + 1)[:-1]
        return data if kind == b"blob" else None

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def repo_name(path: str) -> str:
    return os.path.basename(os.path.abspath(path).rstrip(os.sep)).removesuffix(".git") or "repo"


def list_commits(repo: str, config: MineGitConfig) -> tuple[str, list[str]]:
    """(head sha, the non-merge commits with a parent, newest first) of one repository."""
    rev = config.rev or "HEAD"
    if not os.path.isdir(repo):
        raise ValueError(f"--repo {repo}: not a directory")
    git(repo, "rev-parse", "--git-dir")  # "not a git repository" as git words it
    try:
        head = git(repo, "rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}").decode().strip()
    except ValueError:
        raise ValueError(f"--rev {rev}: no such commit in {repo}") from None
    args = ["rev-list", "--no-merges", "--min-parents=1"]
    args += [f"--since={config.since}"] if config.since else []
    args += [f"--max-count={config.max_commits}"] if config.max_commits else []
    return head, git(repo, *args, head, "--").decode().split()


def read_commits(repo: str, shas: list[str]) -> list[CommitInfo]:
    """Message, author date and per-file line counts of each commit, in one `git log`."""
    out = git(repo, "log", "--no-walk=unsorted", "--no-renames", "--no-color", "--no-ext-diff",
              "--no-show-signature", "--encoding=UTF-8", "--numstat", "-z",
              "--format=%x1e%H%x1f%P%x1f%aI%x1f%B%x1f", *shas, "--")
    commits = []
    for record in out.decode("utf-8", "surrogateescape").split("\x1e")[1:]:
        fields = record.split("\x1f")
        files = []
        for entry in fields[-1].split("\0"):
            added, _, rest = entry.lstrip("\n").partition("\t")
            deleted, _, path = rest.partition("\t")
            if path:  # a binary file counts "-" lines
                files.append((path, sum(int(n) for n in (added, deleted) if n.isdigit())))
        commits.append(CommitInfo(fields[0], fields[1].split()[0], fields[2], "\x1f".join(fields[3:-1]),
                                  tuple(sorted(files))))
    return commits


def make_plan(config: MineGitConfig) -> list[dict[str, Any]]:
    plan = []
    for repo in config.run_config()["repos"]:
        head, shas = list_commits(repo, config)
        step = config.commits_per_shard
        for start in range(0, len(shas), step):
            plan.append({"repo": repo, "name": repo_name(repo), "head": head, "commits": shas[start:start + step]})
    for entry, name in zip(plan, shard_names("pairs", len(plan))):
        entry["shard"] = name
    return plan


def mine_local_shard(entry: dict[str, Any], run: ShardedRun, config: MineGitConfig) -> dict[str, Any]:
    """One shard of the plan, written to the run; returns its report."""
    report = MiningReport()
    rows: list[dict[str, Any]] = []
    source = f"git:{entry['name']}"
    with BlobReader(entry["repo"], config.max_file_bytes) as blobs:
        for commit in read_commits(entry["repo"], entry["commits"]):
            paths = select_commit(commit.message, commit.files, config, report)
            rows.extend(mine_commit(commit, paths, blobs.read, source, config.max_file_bytes, report))
    return run.write_shard(entry["shard"], rows, {"repo": entry["name"], **report.as_dict()})


def mine_git(config: MineGitConfig, out: str, workers: int = 1, force: bool = False) -> dict[str, Any]:
    """Mine the local repositories of `config` into `out`; returns the manifest."""
    run = ShardedRun(out, "mine-git", config.run_config(), force=force)
    plan_file = run.out / "plan.json"
    if plan_file.exists():
        plan = json.loads(plan_file.read_text())["shards"]
    else:
        plan = make_plan(config)
        write_json(plan_file, {"shards": plan})
    todo = [entry for entry in plan if not run.done(entry["shard"])]
    work = functools.partial(mine_local_shard, run=run, config=config)
    for _ in run_parallel(work, todo, workers, desc="mine-git"):
        pass
    reports = [run.report(entry["shard"]) for entry in plan]
    repos: dict[str, dict[str, Any]] = {}
    for entry, report in zip(plan, reports):
        repos.setdefault(entry["repo"], {"name": entry["name"], "head": entry["head"], "reports": []})
        repos[entry["repo"]]["reports"].append(report)
    return run.finish({"source": "git", "shards": len(plan), **merge_reports(reports),
                       "repos": [{"path": path, "name": r["name"], "head": r["head"], **merge_reports(r["reports"])}
                                 for path, r in repos.items()]})
