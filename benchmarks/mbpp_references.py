"""MBPP's reference solutions through the verifier: the pass rate, and every task whose
own tests are broken (the reference fails them) or that must be judged in the child.

Anchor: the reference solutions should pass their own tests, 974 of 974; a task listed
here is a data problem (or a verifier problem) worth a look.

    .venv/bin/python benchmarks/mbpp_references.py [--mbpp ../shared/data/mbpp/mbpp.jsonl] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp" / "mbpp.jsonl"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mbpp", default=str(DEFAULT), help="path to mbpp.jsonl in the original format")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    args = parser.parse_args(argv)

    from greenloop.cli.tasks import reference_completion
    from greenloop.tasks import load_tasks
    from greenloop.types import Candidate
    from greenloop.verify.funnel import VerifyConfig, verify_candidates

    tasks = load_tasks(f"mbpp:{args.mbpp}")
    candidates = [Candidate(t.task_id, reference_completion(t)) for t in tasks.tasks.values()]
    started = time.perf_counter()
    verdicts = verify_candidates(tasks, candidates, VerifyConfig())
    seconds = time.perf_counter() - started
    broken = [(c.task_id, v.outcome.value, v.detail) for c, v in zip(candidates, verdicts) if not v.passed]
    in_child = [(c.task_id, v.meta.get("judge_note", "")) for c, v in zip(candidates, verdicts) if v.meta.get("judge") == "child"]
    passed = sum(v.passed for v in verdicts)
    print(f"MBPP reference solutions: {passed}/{len(candidates)} pass ({passed / len(candidates):.1%}) "
          f"in {seconds:.1f}s ({len(candidates) / seconds:.0f} candidates/s, recordings cached or not)")
    print(f"tasks whose own tests are broken: {len(broken)}")
    for task_id, outcome, detail in broken:
        print(f"  {task_id}: {outcome}: {detail}")
    print(f"tasks judged in the child (tests pass or return non-plain data): {len(in_child)}")
    for task_id, note in in_child:
        print(f"  {task_id}: {note}")
    if args.json:
        print(json.dumps({"tasks": len(candidates), "passed": passed, "broken": broken,
                          "judged_in_child": [t for t, _ in in_child], "seconds": round(seconds, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
