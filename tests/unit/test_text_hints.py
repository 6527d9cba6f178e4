"""The parser's hint row, and the TRM's use of it."""

import pytest

from greenloop.text.hints import NO_HINT, parser_error_line


@pytest.mark.parametrize("text, row", [
    ("def f(x):\n    if x\n        return 1\n", 1),          # missing colon: the header's row
    ("def f(x):\n    return g(x, [1, 2)\n", 1),            # unmatched bracket
    ("def f(x):\n    return 'a\n", 1),                     # unclosed string
    ("def f(x):\nreturn x\n", 1),                          # indentation
    ("def f(x):\n    return x\n", NO_HINT),                # parses
    ("x = (\n", 0),                                        # never closed: where it opened
])
def test_parser_error_line(text, row):
    assert parser_error_line(text) == row


def test_the_hint_changes_trm_logits_only_on_and_through_the_flagged_line():
    torch = pytest.importorskip("torch")
    from greenloop.models import build_model

    torch.manual_seed(0)
    model = build_model("trm", vocab_size=64, hidden_size=32, num_attention_heads=2, n_layers=1, n_latent=1,
                        n_deep=1, supervision_steps=1, grid_lines=8, grid_width=8).eval()
    ids = torch.randint(5, 64, (2, 4, 6))
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        none = model(input_ids=ids, hint_lines=torch.tensor([-1, -1])).logits
        hinted = model(input_ids=ids, hint_lines=torch.tensor([2, -1])).logits
    assert torch.equal(plain, none)                       # -1 is no hint
    assert not torch.allclose(hinted[0], plain[0])       # the hint reaches the first program
    assert torch.allclose(hinted[1], plain[1])           # and not the other one
    model.config.line_hint = False
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, hint_lines=torch.tensor([2, -1])).logits, plain)
