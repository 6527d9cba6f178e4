"""Cycles with the adaptive curriculum drawing each day's tasks, with a scripted policy."""

import json
from dataclasses import replace

import pytest

from greenloop.loop.config import load_or_write
from greenloop.loop.curriculum import AdaptiveCurriculum
from greenloop.loop.cycle import run_cycles, run_phase
from greenloop.tasks import load_tasks
from tests.loop.oracle import Oracle
from tests.loop.test_cycle import FROZEN, config, setup  # noqa: F401  (setup: the shared model and tasks)


class SometimesRight(Oracle):
    """Knows `always` every day and `odd_days` on odd cycles only (the loop seeds each
    cycle's generation with seed + cycle, and these runs use seed 0)."""

    def __init__(self, always: set[str], odd_days: set[str], task_specs: str):
        super().__init__(always, task_specs)
        self.always, self.odd_days = always, odd_days

    def generate_with_usage(self, prompts, n=1, temperature=0.0, max_tokens=256, **options):
        self.knows = self.always | (self.odd_days if options["seed"] % 2 else set())
        return super().generate_with_usage(prompts, n, temperature, max_tokens, **options)


def test_curriculum_draws_fewer_solved_tasks_and_resumes_exactly(setup):  # noqa: F811
    tmp, _, _, frozen = setup
    train = "koans@train"  # 30 tasks: a day verifies in moments
    train_ids = sorted(load_tasks(train).tasks)
    always, odd_days = set(frozen[:5]) | set(train_ids[:15]), set(train_ids[15:])

    def make(checkpoint, path):
        return SometimesRight(always, odd_days, f"{train},{FROZEN}")

    per_day = len(train_ids) - 4
    settings = {"curriculum": True, "train_per_day": per_day, "train_tasks": train}
    run_cycles(config(setup, "curriculum", **settings), 4, show_progress=False, policy_factory=make)
    path = tmp / "curriculum" / "curriculum.json"
    after_four = AdaptiveCurriculum.load(path)
    assert after_four.meta["through_cycle"] == 4 and sorted(after_four.meta["draws"]) == ["1", "2", "3", "4"]
    solved = {t for t in train_ids if after_four.standing(t) == "above"}
    assert solved and solved <= always  # solved every day it was drawn, four days or more
    in_band = {t for t in train_ids if after_four.standing(t) == "in_band"}
    assert {t for t in odd_days if len(after_four.attempts(t)) >= 2} <= in_band  # solved one day in two
    assert all(t in odd_days or len(after_four.attempts(t)) < 4 for t in in_band)  # p̂ ≤ 4/5 until 4 solved days
    assert all(after_four.weight(t) == 0.1 for t in solved)

    day = run_phase(config(setup, "curriculum", **settings), "day", 5, show_progress=False, policy_factory=make)
    saved = path.read_text()
    again = run_phase(config(setup, "curriculum", **settings), "day", 5, show_progress=False, policy_factory=make)
    assert again == {**day, "resumed": day["tasks"]} and path.read_text() == saved  # same draw, not folded twice
    rows = run_cycles(config(setup, "curriculum", **settings), 5, show_progress=False, policy_factory=make)
    fifth = set(AdaptiveCurriculum.load(path).meta["draws"]["5"])
    assert rows[5]["day"]["tasks"] == len(fifth) == per_day
    left_out = set(train_ids) - fifth
    assert len(solved) >= 8 and left_out <= solved  # a uniform draw leaves out only solved tasks about 1% of the time
    assert rows[5]["day"]["curriculum"]["above"] >= 1 and sum(rows[5]["day"]["curriculum"].values()) == len(train_ids)

    straight = run_cycles(config(setup, "curriculum-straight", **settings), 5, show_progress=False, policy_factory=make)

    def worked(row):
        return {k: v for k, v in row["day"].items() if k != "resumed"}  # day 5 ran in two goes above
    assert [worked(r) for r in straight[1:]] == [worked(r) for r in rows[1:]]
    state = json.loads(path.read_text())
    assert json.loads((tmp / "curriculum-straight" / "curriculum.json").read_text()) == state


def test_a_run_folder_from_before_the_curriculum_option_still_resumes(setup):  # noqa: F811
    tmp, _, _, _ = setup
    cfg = config(setup, "older")
    load_or_write(cfg)
    path = tmp / "older" / "config.json"
    saved = json.loads(path.read_text())
    del saved["curriculum"], saved["sleep"]["prompt_weight"]
    path.write_text(json.dumps(saved))
    assert load_or_write(cfg) == cfg
    with pytest.raises(ValueError, match=r"other settings \(curriculum differ\)"):
        load_or_write(config(setup, "older", curriculum=True))
    with pytest.raises(ValueError, match=r"other settings \(sleep differ\)"):
        load_or_write(replace(cfg, sleep=replace(cfg.sleep, prompt_weight=0.5)))
