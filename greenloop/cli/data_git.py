"""`greenloop data mine-git`: bug-fix commits of local git repositories (or, online, one
GitHub repository) as function-level buggy→fixed pairs."""

from __future__ import annotations

import os
import time

from greenloop.cli.data import add_common_options
from greenloop.data.git_mining import FIX_PATTERN, MineGitConfig


def add_command(subparsers) -> None:
    p = subparsers.add_parser(
        "mine-git", help="bug-fix commits of git repositories as function-level pairs",
        description="Find bug-fix commits (message matches --pattern; small change) and make each "
                    "function they changed a pair: buggy = the function at the parent, fixed = at the "
                    "commit (bug_type git:fix, family git). Test files, merges, added, deleted and "
                    "renamed functions, and changes to whitespace, comments or docstrings alone are left "
                    "out. A file side that is huge, not UTF-8 or does not parse is skipped and listed in "
                    "its shard's report.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--repo", action="append", metavar="PATH",
                        help="a local git repository (repeat for several)")
    source.add_argument("--github", metavar="OWNER/REPO",
                        help="mine a GitHub repository through the REST API instead (needs the network)")
    p.add_argument("--rev", help="branch or commit to walk back from (default: HEAD; the default branch on GitHub)")
    p.add_argument("--pattern", default=FIX_PATTERN,
                   help="Python regex searched in the whole commit message; default: whole words "
                        "fix/fixes/fixed, bug(s), bugfix, hotfix, issue #N, error(s), crash, regression, "
                        "typo, wrong, incorrect, faulty, broken, mistake, case-insensitive "
                        "(so not 'prefix' or 'debug')")
    p.add_argument("--max-files", type=int, default=MineGitConfig.max_files,
                   help="mine a commit only if it changes at most this many non-test .py files (default %(default)s)")
    p.add_argument("--max-changed-lines", type=int, default=MineGitConfig.max_changed_lines,
                   help="... with at most this many lines added plus deleted in them (default %(default)s)")
    p.add_argument("--since", help="only commits after this date (any git date; ISO 8601 with --github)")
    p.add_argument("--max-commits", type=int, help="--repo: look at the newest N commits of each repository")
    p.add_argument("--max-pages", type=int, help="--github: look at this many pages of 100 commits at most")
    p.add_argument("--token", help="GitHub token (default: $GITHUB_TOKEN; without one the limit is 60 requests an hour)")
    add_common_options(p)
    p.set_defaults(run=run_mine_git)


def run_mine_git(args) -> int:
    config = MineGitConfig(repos=tuple(args.repo or ()), github=args.github, rev=args.rev, pattern=args.pattern,
                           max_files=args.max_files, max_changed_lines=args.max_changed_lines, since=args.since,
                           max_commits=args.max_commits, max_pages=args.max_pages)
    started = time.perf_counter()
    if config.github:
        from greenloop.data.github import mine_github

        manifest = mine_github(config, args.out, token=args.token or os.environ.get("GITHUB_TOKEN"), force=args.force)
    else:
        from greenloop.data.git_mining import mine_git

        manifest = mine_git(config, args.out, workers=args.workers, force=args.force)
    print(summary_text(manifest, time.perf_counter() - started, args.out))
    return 0


def summary_text(manifest: dict, seconds: float, out: str) -> str:
    m = manifest
    found = (f"{m['pairs']} pairs from {m['mined']} bug-fix commits ({m['matching']} matched the pattern, "
             f"{m['too_large']} too large, {m['no_python']} without non-test Python changes) of {m['commits']} commits "
             f"looked at; {m['files']} files, {m['shards']} shards in {seconds:.1f} s -> {out}")
    lines = [found]
    if m["skipped"]:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in m["skipped"].items())
        lines.append(f"skipped file sides ({reasons}); their paths are in {out}/shards/*.report.json")
    return "\n".join(lines)
