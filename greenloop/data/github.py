"""Bug-fix commits of one GitHub repository through the REST API, for users who are online.

`greenloop data mine-git --github OWNER/REPO` lists the repository's commits (pages of
100), selects bug fixes the way the local miner does (`select_commit`: message pattern,
small change), and cuts function-level pairs with the same code (`mine_commit`). Requests:
one per page of commits, one per matching commit (its files, with their patches), and one
per mined file (its content at the commit; the parent's content is rebuilt from the
patch, and fetched only when the patch does not fit).

Only `urllib_fetch` touches the network. `GitHubClient` gets it injected, with the clock
and sleep, so tests serve canned responses offline. The client is rate-limit aware: it
waits for `Retry-After` seconds, or until `X-RateLimit-Reset` when `X-RateLimit-Remaining`
is 0 (before the next request, not after a refusal), backs off on a secondary limit and on
5xx answers and network errors, and gives up after `max_retries`.

Resuming: each page is one shard (`pairs-00000` is page 1). `github-state.json` pins the
head commit, so later pages do not shift when the branch moves, and keeps the listing of
the page in progress; each finished commit of that page is kept in `github-commits/` until
the page's shard is written. A killed run, started again, refetches nothing it finished.
The token is never written to the output folder.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from greenloop.data.git_mining import CommitInfo, MineGitConfig, MiningReport, merge_reports, mine_commit, select_commit
from greenloop.data.pairs import PAIR_FIELDS
from greenloop.data.shards import ShardedRun, write_json

API_URL = "https://api.github.com"
PER_PAGE = 100
JSON_MEDIA = "application/vnd.github+json"
RAW_MEDIA = "application/vnd.github.raw+json"


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


Fetch = Callable[[str, dict[str, str]], Response]


class GitHubError(OSError):
    """The API refused a request (`status`), or kept failing after retries."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def urllib_fetch(url: str, headers: dict[str, str], timeout: float = 60) -> Response:
    """GET `url`; an HTTP error status is returned as a Response, not raised."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return Response(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())
    except http.client.HTTPException as exc:  # a reply cut short: the network's fault, retried
        raise ConnectionError(f"{type(exc).__name__}: {exc}") from None


class GitHubClient:
    """GET requests to the REST API through an injected `fetch`, waiting out rate limits."""

    def __init__(self, fetch: Fetch = urllib_fetch, token: str | None = None, *, api_url: str = API_URL,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 notify: Callable[[str], None] | None = None, max_retries: int = 6):
        self.fetch, self.token, self.api_url = fetch, token, api_url.rstrip("/")
        self.sleep, self.clock, self.max_retries = sleep, clock, max_retries
        self.notify = notify or (lambda message: print(message, file=sys.stderr))
        self.requests = 0
        self._quiet_until = 0.0  # the primary limit is spent until then

    def get(self, path: str, params: dict[str, Any] | None = None, *, raw: bool = False,
            missing_ok: bool = False) -> bytes | None:
        """The body of `GET path`; None for a 404 when `missing_ok`."""
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.api_url}{path}" + (f"?{query}" if query else "")
        headers = {"Accept": RAW_MEDIA if raw else JSON_MEDIA, "User-Agent": "greenloop",
                   "X-GitHub-Api-Version": "2022-11-28"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in range(self.max_retries + 1):
            self._wait(self._quiet_until - self.clock(), "rate limit spent")
            try:
                self.requests += 1
                response = self.fetch(url, headers)
            except OSError as exc:  # the network, not GitHub
                if attempt == self.max_retries:
                    raise GitHubError(f"GET {url}: {exc}") from None
                self._wait(2.0 ** attempt, f"network error ({exc})")
                continue
            if response.headers.get("x-ratelimit-remaining") == "0":
                self._quiet_until = float(response.headers.get("x-ratelimit-reset", 0)) + 1
            if response.status == 200:
                return response.body
            if response.status == 404 and missing_ok:
                return None
            delay = self.retry_delay(response, attempt)
            if delay is None or attempt == self.max_retries:
                raise GitHubError(f"GET {url}: {response.status} {error_message(response)}", response.status)
            self._wait(delay, f"{response.status} {error_message(response)}")
        raise AssertionError("unreachable")

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return json.loads(self.get(path, params))

    def retry_delay(self, response: Response, attempt: int) -> float | None:
        """Seconds to wait before asking again, or None when asking again cannot help."""
        headers = response.headers
        if response.status in (403, 429):
            if headers.get("retry-after", "").isdigit():
                return float(headers["retry-after"])
            if headers.get("x-ratelimit-remaining") == "0":
                return max(0.0, float(headers.get("x-ratelimit-reset", 0)) - self.clock()) + 1
            if response.status == 429 or "rate limit" in error_message(response).lower():
                return 60.0 * 2 ** attempt  # a secondary limit that names no time
            return None  # forbidden
        if response.status >= 500:
            return 2.0 ** attempt
        return None

    def _wait(self, seconds: float, why: str) -> None:
        if seconds <= 0:
            return
        if seconds >= 10:
            self.notify(f"github: {why}; waiting {seconds:.0f} s")
        self.sleep(seconds)


def error_message(response: Response) -> str:
    try:
        return str(json.loads(response.body).get("message", "")) or response.body[:200].decode(errors="replace")
    except (ValueError, AttributeError):
        return response.body[:200].decode(errors="replace")


def rebuild_before(after: str, patch: str) -> str | None:
    """The file before a commit, from the file after it and the commit's hunks for it (GitHub's
    `patch`: a unified diff without its header); None when the hunks do not fit `after`
    (a truncated patch), so the caller fetches the old file instead."""
    new = after.split("\n")
    if after.endswith("\n"):
        new.pop()
    old: list[str] = []
    at, previous, marks = 0, "", set()  # at: next line of `new` not yet placed
    for line in patch.split("\n"):
        hunk = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", line)
        if hunk:
            start = int(hunk[1]) - (0 if hunk[2] == "0" else 1)
            if start < at or start > len(new):
                return None
            old.extend(new[at:start])
            at = start
        elif line[:1] in (" ", "+"):
            if at >= len(new) or new[at] != line[1:]:
                return None
            at += 1
            if line[0] == " ":
                old.append(line[1:])
        elif line[:1] == "-":
            old.append(line[1:])
        elif line[:1] == "\\":  # "\ No newline at end of file", after the line it is about
            marks.add(previous)
        elif line:
            return None
        previous = line[:1]
    old.extend(new[at:])
    ends_with_newline = after.endswith("\n") if not marks else not ({" ", "-"} & marks)
    return "\n".join(old) + ("\n" if old and ends_with_newline else "")


class GitHubMiner:
    """Pages of one repository's commits, each mined into one shard of `run`."""

    def __init__(self, client: GitHubClient, run: ShardedRun, config: MineGitConfig):
        self.client, self.run, self.config = client, run, config
        self.repo_path = f"/repos/{config.github}"
        self.source = f"git:{config.github}"
        self.state_file = run.out / "github-state.json"
        self.commit_dir = run.out / "github-commits"
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def mine(self, progress: Callable[[int], None] = lambda n: None) -> list[dict[str, Any]]:
        """Every page up to `max_pages` or the end of history; the reports of all pages."""
        reports, page = [], 1
        while self.config.max_pages is None or page <= self.config.max_pages:
            name = f"pairs-{page - 1:05d}"
            if not self.run.done(name):
                self.mine_page(page, name)
            reports.append(self.run.report(name))
            progress(reports[-1]["listed"])
            if reports[-1]["listed"] < PER_PAGE:
                break
            page += 1
        return reports

    def list_page(self, page: int) -> list[dict[str, Any]]:
        if self.state.get("page") == page:
            return self.state["commits"]
        params = {"per_page": PER_PAGE, "page": page, "since": self.config.since,
                  "sha": self.state.get("head") or self.config.rev}
        listed = self.client.get_json(f"{self.repo_path}/commits", params)
        commits = [{"sha": c["sha"], "parents": [p["sha"] for p in c.get("parents", [])],
                    "message": c["commit"]["message"], "date": c["commit"]["author"]["date"]} for c in listed]
        if commits and "head" not in self.state:
            self.state["head"] = commits[0]["sha"]  # later pages list from here, so they do not shift
        self.state.update(page=page, commits=commits)
        write_json(self.state_file, self.state)
        return commits

    def mine_page(self, page: int, name: str) -> dict[str, Any]:
        commits = self.list_page(page)
        report, rows, done = MiningReport(), [], []
        for listed in commits:
            if len(listed["parents"]) != 1:
                continue
            if not re.search(self.config.pattern, listed["message"]):
                report.commits += 1
                continue
            cached = self.commit_dir / f"{listed['sha']}.json"
            if not cached.exists():
                self.commit_dir.mkdir(exist_ok=True)
                write_json(cached, self.mine_listed_commit(listed))
            done.append(json.loads(cached.read_text()))
            rows.extend({k: pair[k] for k in PAIR_FIELDS} for pair in done[-1]["pairs"])
        totals = merge_reports([report.as_dict()] + [d["report"] for d in done])
        skipped_files = [s for d in done for s in d["report"]["skipped_files"]]
        result = self.run.write_shard(name, rows, {"repo": self.config.github, "page": page, "listed": len(commits),
                                                   **totals, "skipped_files": skipped_files})
        for listed in commits:
            (self.commit_dir / f"{listed['sha']}.json").unlink(missing_ok=True)
        return result

    def mine_listed_commit(self, listed: dict[str, Any]) -> dict[str, Any]:
        """One matching commit's pairs and report (it counts itself as looked at)."""
        report = MiningReport()
        try:
            detail = self.client.get_json(f"{self.repo_path}/commits/{listed['sha']}")
        except GitHubError as exc:
            if exc.status != 422:  # 422: GitHub will not serve this commit (its diff is too large)
                raise
            report.commits += 1
            report.skip(listed["sha"], "", f"commit refused by the API: {exc}")
            return {"pairs": [], "report": report.as_dict()}
        files = {f["filename"]: f for f in detail.get("files", []) if f.get("status") == "modified"}
        counted = [(f["filename"], f.get("additions", 0) + f.get("deletions", 0)) for f in detail.get("files", [])]
        commit = CommitInfo(listed["sha"], listed["parents"][0], listed["date"], listed["message"], tuple(sorted(counted)))
        paths = [p for p in select_commit(commit.message, commit.files, self.config, report) if p in files]
        pairs = mine_commit(commit, paths, self.blob_reader(commit, files), self.source,
                            self.config.max_file_bytes, report)
        return {"pairs": pairs, "report": report.as_dict()}

    def blob_reader(self, commit: CommitInfo, files: dict[str, dict[str, Any]]):
        """read_blob for `mine_commit`: the commit's side fetched, the parent's rebuilt."""
        fetched: dict[tuple[str, str], bytes | None] = {}

        def fetch(sha: str, path: str) -> bytes | None:
            if (sha, path) not in fetched:
                fetched[sha, path] = self.client.get(f"{self.repo_path}/contents/{urllib.parse.quote(path)}",
                                                     {"ref": sha}, raw=True, missing_ok=True)
            return fetched[sha, path]

        def read(sha: str, path: str) -> bytes | None:
            patch = files.get(path, {}).get("patch")
            if sha == commit.parent and patch:
                after = fetch(commit.sha, path)
                try:
                    before = rebuild_before(after.decode("utf-8"), patch) if after is not None else None
                except UnicodeDecodeError:
                    before = None
                if before is not None:
                    return before.encode("utf-8")
            return fetch(sha, path)

        return read


def mine_github(config: MineGitConfig, out: str, token: str | None = None, force: bool = False,
                client: GitHubClient | None = None) -> dict[str, Any]:
    """Mine `config.github` into `out`; returns the manifest."""
    from tqdm import tqdm

    run = ShardedRun(out, "mine-git", config.run_config(), force=force)
    client = client or GitHubClient(urllib_fetch, token)
    total = config.max_pages * PER_PAGE if config.max_pages else None
    miner = GitHubMiner(client, run, config)
    with tqdm(total=total, desc="mine-git github", unit="commit", disable=not sys.stderr.isatty(),
              dynamic_ncols=True) as bar:
        reports = miner.mine(bar.update)
    shutil.rmtree(miner.commit_dir, ignore_errors=True)
    return run.finish({"source": "github", "repo": config.github, "head": miner.state.get("head"), "shards": len(reports),
                       "listed": sum(r["listed"] for r in reports), **merge_reports(reports)})
