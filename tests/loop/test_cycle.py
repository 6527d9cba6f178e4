"""Cycles end to end on built-in koans and small repair tasks, with a scripted policy."""

import json

import pytest

from greenloop.evaluate.gates import GateConfig
from greenloop.loop.config import CycleConfig
from greenloop.loop.cycle import half_of, run_cycles, run_phase
from greenloop.store import EpisodeStore, SchemaVersionError
from greenloop.tasks import load_tasks
from greenloop.train.finetune import FinetuneConfig
from tests.loop.oracle import factory
from tests.repair_fixture import mutate_folder
from tests.tiny_policy import save_tiny_gpt, save_tokenizer_folder

FROZEN = "koans@eval"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loop")
    model = save_tiny_gpt(tmp / "model", save_tokenizer_folder(tmp / "tok"))
    train = f"koans@train,repair:dir:{mutate_folder(tmp)}"
    frozen = sorted(load_tasks(FROZEN).tasks)
    return tmp, str(model), train, frozen


def config(setup, out, **overrides):
    tmp, model, train, _ = setup
    settings = {"model": model, "out": str(tmp / out), "train_tasks": train, "eval_tasks": FROZEN, "train_per_day": None,
                    "k": 2, "workers": 1, "sleep": FinetuneConfig(steps=2, batch_size=2, max_len=512),
                    "gate": GateConfig(family_margin=0.5)}
    settings.update(overrides)
    return CycleConfig(**settings)


def schedule(frozen, train_ids):
    """base knows 5 frozen tasks; cycle-1 knows 9 (better); cycle-2 knows 2 (worse)."""
    return {"base": set(frozen[:5]) | set(train_ids[:4]), "cycle-1": set(frozen[:9]) | set(train_ids),
            "cycle-2": set(frozen[:2]) | set(train_ids)}


def test_better_is_promoted_worse_rolled_back_metrics_and_plots_written(setup):
    tmp, _, train, frozen = setup
    train_ids = sorted(load_tasks(train).tasks)
    plan = schedule(frozen, train_ids)
    rows = run_cycles(config(setup, "run"), 2, show_progress=False, policy_factory=factory(plan, f"{train},{FROZEN}"))
    base, first, second = rows
    tasks = load_tasks(FROZEN).tasks
    gate_half = {t for t in frozen if half_of(tasks[t]) == "gate"}
    lost_by_second = set(frozen[2:9]) & gate_half
    assert lost_by_second, "the fixture needs a gate-half task that cycle-2 forgets"
    assert base["pass_rate"] == pytest.approx(5 / len(frozen)) and base["promoted"]
    assert first["promoted"] and first["passed"] == 9
    assert first["gate_half"]["gains"] == len(set(frozen[5:9]) & gate_half) and first["gate_half"]["losses"] == 0
    confirm = first["confirm_half"]  # measured on the tasks the gate never looks at
    assert confirm["gains"] == len(set(frozen[5:9]) - gate_half) and confirm["tasks"] == len(frozen) - len(gate_half)
    assert first["day"]["tasks_solved"] == 4  # the day ran with base, which knows 4 training tasks
    assert first["sleep"]["new_examples"] == 4
    assert not second["promoted"] and f"{len(lost_by_second)} tasks lost, 0 gained" in second["gate"]
    assert second["current"] == "cycle-1" and second["day"]["tasks_solved"] == len(train_ids)
    assert second["sleep"]["replay_examples"] == 4  # cycle 1's examples came back
    folder = tmp / "run"
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["cycle"] for r in lines] == [0, 1, 2]
    for name in ("pass_rate", "median_steps_to_green", "repeat_error_rate"):
        png = folder / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "checkpoints" / "cycle-1" / "config.json").exists()
    report = (folder / "report.md").read_text()
    assert "| 2 | cycle-2 | 2/15" in report and "rolled back" in report and "plots/pass_rate.png" in report
    state = json.loads((folder / "state.json").read_text())
    assert state["current"] == "cycle-1" and state["current_eval_cycle"] == 1
    with EpisodeStore(folder / "store.db", readonly=True) as store:
        assert len(store.episodes(phase="eval", cycle=2)) == len(frozen)
        assert {r.metric for r in store.eval_results(store.runs()[0].run_id, cycle=1)} >= {"pass_rate"}


def test_resume_skips_finished_work_and_refuses_other_settings(setup):
    tmp, _, train, frozen = setup
    plan = schedule(frozen, sorted(load_tasks(train).tasks))
    make = factory(plan, f"{train},{FROZEN}")
    first = run_cycles(config(setup, "again"), 1, show_progress=False, policy_factory=make)
    more = run_cycles(config(setup, "again"), 2, show_progress=False, policy_factory=make)
    assert [r["cycle"] for r in more] == [0, 1, 2]
    assert more[1] == first[1]  # cycle 1 was done: its row is read back, not recomputed
    assert more[0]["pass_rate"] == first[0]["pass_rate"]
    with EpisodeStore(tmp / "again" / "store.db", readonly=True) as store:
        assert len(store.episodes(phase="eval", cycle=0)) == len(frozen)
    with pytest.raises(ValueError, match="other settings .*k"):
        run_cycles(config(setup, "again", k=3), 2, show_progress=False, policy_factory=make)
    with pytest.raises(ValueError, match="cycle config k: must be >= 1, got 0"):
        config(setup, "bad", k=0)
    with pytest.raises(ValueError, match="--critical names tasks that are not in the frozen set"):
        run_cycles(config(setup, "critical", gate=GateConfig(critical=("koans/none",))), 1, show_progress=False,
                   policy_factory=make)


def test_phases_run_one_at_a_time_in_order(setup):
    _, _, train, frozen = setup
    make = factory(schedule(frozen, sorted(load_tasks(train).tasks)), f"{train},{FROZEN}")
    cfg = config(setup, "phases")
    with pytest.raises(ValueError, match="day has not finished"):
        run_phase(cfg, "sleep", 1, show_progress=False, policy_factory=make)
    day = run_phase(cfg, "day", 1, show_progress=False, policy_factory=make)
    assert day["tasks_solved"] == 4
    assert run_phase(cfg, "sleep", 1, show_progress=False, policy_factory=make)["new_examples"] == 4
    with pytest.raises(ValueError, match="cycle 1 has not been evaluated"):
        run_phase(cfg, "day", 2, show_progress=False, policy_factory=make)
    row = run_phase(cfg, "evaluate-cycle", 1, show_progress=False, policy_factory=make)
    assert row["promoted"] and row["passed"] == 9
    again = run_phase(cfg, "evaluate-cycle", 1, show_progress=False, policy_factory=make)
    assert again["gate_half"] == row["gate_half"] and again["previous"] == "base"  # not re-gated against itself


def test_a_day_that_verifies_nothing_makes_no_candidate(setup):
    _, _, train, frozen = setup
    make = factory({"base": set(frozen[:3])}, f"{train},{FROZEN}")
    rows = run_cycles(config(setup, "idle"), 1, show_progress=False, policy_factory=make)
    assert rows[1]["checkpoint"] is None and not rows[1]["promoted"] and rows[1]["current"] == "base"
    assert "no candidate: the day verified no answer" in rows[1]["gate"]


def test_a_run_killed_mid_day_resumes_without_losing_or_repeating_work(setup):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    tmp, model, train, _frozen = setup
    out = tmp / "killed"
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "tests.loop.slow_cycle", str(out), model, train]
    proc = subprocess.Popen(cmd, cwd=root, start_new_session=True)
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline and proc.poll() is None:  # wait until the day has stored some episodes
        time.sleep(0.2)
        if (out / "store.db").exists():
            try:
                with EpisodeStore(out / "store.db", readonly=True) as store:
                    stored = len(store.episodes(phase="day"))
            except SchemaVersionError:  # the run is still creating the store's tables
                continue
            if stored >= 4:
                break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert stored >= 4, "the run never reached the day phase"
    n_train = len(load_tasks(train).tasks)
    with EpisodeStore(out / "store.db", readonly=True) as store:
        assert len(store.episodes(phase="day")) < 2 * n_train  # killed before the day finished
    subprocess.run(cmd, cwd=root, check=True, timeout=300)
    with EpisodeStore(out / "store.db", readonly=True) as store:
        day = store.episodes(phase="day", cycle=1)
        assert len(day) == 2 * n_train and len({(e.task_id, e.sample_idx) for e in day}) == len(day)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["cycle"] for r in rows] == [0, 1] and rows[1]["promoted"] and rows[1]["passed"] == 9


def test_agent_mode_stores_each_step_of_each_episode(setup):
    from tests.loop.oracle import agent_factory

    _, _, train, frozen = setup
    train_ids = sorted(load_tasks(train).tasks)
    make = agent_factory({"base": set(frozen[:4]) | set(train_ids[:3]), "cycle-1": set(frozen[:6])}, f"{train},{FROZEN}")
    rows = run_cycles(config(setup, "agent", mode="agent", max_steps=3), 1, show_progress=False, policy_factory=make)
    assert rows[0]["passed"] == 4 and rows[0]["median_steps_to_green"] == 2
    assert rows[1]["day"]["tasks_solved"] == 3 and rows[1]["passed"] == 6
    with EpisodeStore(setup[0] / "agent" / "store.db", readonly=True) as store:
        solved = [e for e in store.episodes(phase="eval", cycle=0) if e.passed]
        assert [s.command for s in solved[0].steps] == ["apply_patch", "run_tests"] and solved[0].steps[0].diff
        stuck = next(e for e in store.episodes(phase="eval", cycle=0) if not e.passed)
        assert [s.command for s in stuck.steps] == ["run_check", "run_tests", "run_tests"]
        assert stuck.first_error_signature and stuck.steps_to_green is None
    from greenloop.io import read_jsonl
    from greenloop.text.edit_format import apply_edit

    tasks = load_tasks(train).tasks
    for row in read_jsonl(setup[0] / "agent" / "sleep" / "cycle-1.jsonl"):  # trained on the fixes the agent made
        task = tasks[row.data["task_id"]]
        assert apply_edit(task.meta["broken"], row.data["completion"]) == task.reference
