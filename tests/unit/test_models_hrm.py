"""HRM: the one-step gradient, ACT segments with carried state and Q-learning, halting, and
the non-causal variant."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from greenloop.models.hrm import HRMState
from tests.unit.test_models import example_batch, tiny_model


def record_grad_mode(blocks) -> list[bool]:
    """Whether autograd was on at each call of the first block of a module."""
    calls: list[bool] = []
    blocks[0].register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    return calls


def test_one_step_gradient_only_the_last_l_and_h_updates_are_in_the_graph():
    model = tiny_model("hrm", h_cycles=3, l_cycles=2, halt_max_steps=1)
    l_calls, h_calls = record_grad_mode(model.l_blocks), record_grad_mode(model.h_blocks)
    ids, labels = example_batch("hrm")
    model(input_ids=ids, labels=labels).loss.backward()
    assert l_calls == [False] * 5 + [True]  # N*T = 6 low-level steps
    assert h_calls == [False] * 2 + [True]  # N = 3 high-level steps
    for key, parameter in model.named_parameters():
        if key in ("h_init", "l_init", "q_head.weight", "q_head.bias"):
            continue  # inits feed only the no-grad steps; the Q-head trains only with ACT
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, key


def test_the_no_grad_steps_leave_no_graph_behind():
    # A graph through all N*T steps would make backward cost grow with the cycles: the loss's
    # graph must be the same size whatever the number of cycles.
    def graph_size(h_cycles, l_cycles):
        model = tiny_model("hrm", h_cycles=h_cycles, l_cycles=l_cycles, halt_max_steps=1)
        ids, labels = example_batch("hrm")
        seen, frontier = set(), [model(input_ids=ids, labels=labels).loss.grad_fn]
        while frontier:
            node = frontier.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            frontier.extend(next_node for next_node, _ in node.next_functions)
        return len(seen)

    assert graph_size(2, 1) == graph_size(3, 4)  # (1, 1) differs: the inits are then in the graph


def test_act_segments_with_carried_detached_state():
    model = tiny_model("hrm", halt_max_steps=3, halt_exploration_prob=0.0)
    ids, labels = example_batch("hrm")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    state = model.initial_state(ids)
    assert isinstance(state, HRMState)
    for segments in range(1, model.config.halt_max_steps + 1):
        out = model(input_ids=ids, labels=labels, state=state)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        state = out.state
        assert not state.z_h.requires_grad and not state.z_l.requires_grad
        assert torch.equal(state.steps, torch.full((ids.shape[0],), segments))
        assert out.q_loss is not None and torch.isfinite(out.q_loss)
        torch.testing.assert_close(out.loss, out.lm_loss + model.config.halt_loss_weight * out.q_loss)
        if out.halted.all():
            break
    assert out.halted.all()


def test_one_segment_is_a_plain_language_model():
    model = tiny_model("hrm", halt_max_steps=1)
    ids, labels = example_batch("hrm")
    out = model(input_ids=ids, labels=labels)
    assert out.halted.all() and out.q_loss is None
    assert torch.equal(out.loss, out.lm_loss)


def test_segments_continue_from_the_carried_state():
    model = tiny_model("hrm", halt_max_steps=4).eval()
    ids, _ = example_batch("hrm")
    with torch.no_grad():
        step_by_step = model(input_ids=ids)
        step_by_step = model(input_ids=ids, state=step_by_step.state)
        at_once = model(input_ids=ids, segments=2)
    torch.testing.assert_close(step_by_step.logits, at_once.logits)
    assert torch.equal(at_once.state.steps, torch.full((ids.shape[0],), 2))


def test_exploration_delays_halting_in_training_only():
    model = tiny_model("hrm", halt_max_steps=3, halt_exploration_prob=1.0)
    with torch.no_grad():  # the Q-head says "halt" everywhere
        model.q_head.bias.copy_(torch.tensor([5.0, -5.0]))
    ids, _ = example_batch("hrm")
    assert not model.train()(input_ids=ids).halted.any()  # exploring: at least 2 segments first
    assert model.eval()(input_ids=ids).halted.all()


def test_q_continue_target_bootstraps_from_the_next_segment():
    # With the Q-head fixed at (q_halt, q_continue) = (a, b): the continue target is
    # sigmoid(max(a, b)) before the last segment and sigmoid(a) at the last one.
    model = tiny_model("hrm", halt_max_steps=2, halt_exploration_prob=0.0)
    a, b = -1.0, 1.0
    with torch.no_grad():
        model.q_head.weight.zero_()
        model.q_head.bias.copy_(torch.tensor([a, b]))
    ids, labels = example_batch("hrm")
    first = model(input_ids=ids, labels=labels)
    last = model(input_ids=ids, labels=labels, state=first.state)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    wrong = torch.zeros(ids.shape[0])  # an untrained model gets no sequence exactly right
    q_halt, q_continue = torch.full_like(wrong, a), torch.full_like(wrong, b)
    sigmoid = torch.sigmoid
    torch.testing.assert_close(first.q_loss, bce(q_halt, wrong) + bce(q_continue, sigmoid(torch.maximum(q_halt, q_continue))))
    torch.testing.assert_close(last.q_loss, bce(q_halt, wrong) + bce(q_continue, sigmoid(q_halt)))


def test_non_causal_hrm_sees_the_whole_sequence_and_does_not_generate():
    model = tiny_model("hrm", causal=False).eval()
    ids, labels = example_batch("hrm")
    changed = ids.clone()
    changed[:, -1] = (ids[:, -1] + 1) % 64
    with torch.no_grad():
        before, after = model(input_ids=ids).logits, model(input_ids=changed).logits
    assert not torch.allclose(before[:, 0], after[:, 0])  # the first position saw the last
    with torch.no_grad():  # labels are aligned, not shifted, without causality
        loss = model(input_ids=ids, labels=labels).lm_loss
        expected = torch.nn.functional.cross_entropy(before.reshape(-1, 64), labels.reshape(-1))
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="causal"):
        model.generate(ids, max_new_tokens=2)
