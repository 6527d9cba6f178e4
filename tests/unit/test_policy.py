"""Policies: specs and their errors, the local backend (greenloop and transformers folders:
prompting, batching, seeds, stop strings, token counts) and the openai backend against a
scripted HTTP server on loopback (retries, n fallback, concurrency, the on-disk cache)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from greenloop.policy import Generation, Policy, PolicyError, load_policy
from greenloop.registry import RegistryError

# --- specs and folders -------------------------------------------------------------------


def test_importing_policies_and_serve_imports_no_torch_and_no_openai():
    code = ("import sys, greenloop.policy, greenloop.policy.local, greenloop.policy.openai_backend, greenloop.serve;"
            "print([m for m in ('torch', 'transformers', 'openai', 'fastapi') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("spec, error, match", [
    ("runs/gpt", ValueError, "expected BACKEND:TARGET"),
    ("local:", ValueError, "expected BACKEND:TARGET"),
    ("opnai:gpt-4o", RegistryError, "Did you mean 'openai'"),
])
def test_bad_specs_raise_clear_errors(spec, error, match):
    with pytest.raises(error, match=match):
        load_policy(spec)


def test_missing_or_empty_model_folders_are_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match=f"{missing}: no such model folder"):
        load_policy(f"local:{missing}")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: no config.json and no .gguf file"):
        load_policy(f"local:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="no GGUF file model.gguf"):
        load_policy(f"local:{tmp_path}", gguf_file="model.gguf")
    with pytest.raises(ValueError, match="unknown option.*temprature"):
        load_policy(f"local:{tmp_path}", temprature=0.5)


# --- the local backend ---------------------------------------------------------------------

torch_needed = pytest.mark.skipif(not (importlib.util.find_spec("torch") and importlib.util.find_spec("transformers")),
                                  reason="needs torch and transformers")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from tests.tiny_policy import save_tokenizer_folder

    return save_tokenizer_folder(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def gpt_dir(tmp_path_factory, tokenizer_dir):
    pytest.importorskip("torch")
    from tests.tiny_policy import save_tiny_gpt

    return save_tiny_gpt(tmp_path_factory.mktemp("models") / "gpt", tokenizer_dir)


@pytest.fixture(scope="module")
def gpt(gpt_dir):
    return load_policy(f"local:{gpt_dir}")


@torch_needed
def test_local_policy_gives_n_completions_per_prompt_with_token_counts(gpt):
    assert isinstance(gpt, Policy) and gpt.name == "gpt"
    before = gpt.usage.completion_tokens
    result = gpt.generate_with_usage(["def add(a, b):", "x"], n=3, temperature=1.0, max_tokens=6)
    assert isinstance(result, Generation)
    assert [len(texts) for texts in result.texts] == [3, 3]
    assert all(isinstance(t, str) for texts in result.texts for t in texts)
    assert all(r in ("stop", "length") for reasons in result.finish_reasons for r in reasons)
    encoded = [len(gpt.codec.tokenizer.encode(p).ids) + 2 for p in ("def add(a, b):", "x")]  # + bos, sep
    assert result.prompt_tokens == encoded
    assert all(1 <= c <= 3 * 6 for c in result.completion_tokens)
    assert result.usage.completion_tokens == sum(result.completion_tokens)
    assert gpt.usage.completion_tokens - before == sum(result.completion_tokens)
    assert [len(t) for t in gpt.generate(["def"], n=2, temperature=0.5, max_tokens=4)] == [2]


@torch_needed
def test_greedy_is_deterministic_and_prompted_like_greenloop_sample(gpt):
    import torch

    from greenloop.text.tokenizer import BOS_ID, EOS_ID, PAD_ID, SEP_ID

    first = gpt.generate(["def add(a, b):"], n=2, temperature=0.0, max_tokens=8)
    assert first == gpt.generate(["def add(a, b):"], n=2, temperature=0.0, max_tokens=8)
    assert first[0][0] == first[0][1] and first[0][0]
    prompt = [BOS_ID, *gpt.codec.tokenizer.encode("def add(a, b):").ids, SEP_ID]
    out = gpt.model.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False, eos_token_id=EOS_ID,
                             pad_token_id=PAD_ID)[0, len(prompt):].tolist()
    out = out[:out.index(EOS_ID)] if EOS_ID in out else out
    assert first[0][0] == gpt.codec.tokenizer.decode(out, skip_special_tokens=True)


@torch_needed
def test_prompts_batched_with_left_padding_match_prompts_alone(gpt):
    prompts = ["def add(a, b):\n    return", "x", "for i in range(10):"]
    together = gpt.generate(prompts, temperature=0.0, max_tokens=6)
    assert together == [gpt.generate([p], temperature=0.0, max_tokens=6)[0] for p in prompts]


@torch_needed
def test_sampling_is_seeded(gpt_dir):
    def draw(policy_seed, **call):
        policy = load_policy(f"local:{gpt_dir}", seed=policy_seed)
        return policy.generate_with_usage(["def add(a, b):"], n=4, temperature=1.0, max_tokens=8, **call).texts

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    assert draw(1, seed=7) == draw(2, seed=7)  # a call's seed fixes that call alone
    policy = load_policy(f"local:{gpt_dir}", seed=1)
    first, second = (policy.generate(["x"], n=4, temperature=1.0, max_tokens=8) for _ in range(2))
    assert first != second  # a policy's stream moves on from call to call


@torch_needed
def test_stop_strings_cut_the_completion_before_them(gpt):
    full = gpt.generate_with_usage(["def add(a, b):"], temperature=0.0, max_tokens=12)
    text = full.texts[0][0]
    assert len(text) > 6 and full.finish_reasons == [["length"]]
    stop = text[3:6]
    cut = gpt.generate_with_usage(["def add(a, b):"], temperature=0.0, max_tokens=12, stop=[stop])
    assert cut.texts[0][0] == text[:text.index(stop)]
    assert cut.finish_reasons == [["stop"]]
    assert cut.completion_tokens[0] < full.completion_tokens[0]  # generation stopped early


@torch_needed
def test_dtype_is_applied_and_checked(gpt_dir):
    import torch

    policy = load_policy(f"local:{gpt_dir}", dtype="bfloat16")
    assert next(policy.model.parameters()).dtype == torch.bfloat16
    assert len(policy.generate(["def"], n=2, temperature=0.7, max_tokens=4)[0]) == 2
    with pytest.raises(ValueError, match="'int9': not a torch dtype"):
        load_policy(f"local:{gpt_dir}", dtype="int9")


@torch_needed
def test_a_trm_folder_is_refused(tmp_path):
    from greenloop.models import build_model

    build_model("trm", vocab_size=64, hidden_size=32, n_layers=1, num_attention_heads=4, grid_lines=8,
                grid_width=8).save_pretrained(tmp_path / "trm")
    with pytest.raises(ValueError, match="TRM repair model"):
        load_policy(f"local:{tmp_path / 'trm'}")


@torch_needed
def test_transformers_folder_uses_its_chat_template_when_asked(tmp_path, tokenizer_dir):
    from tests.tiny_policy import save_tiny_llama

    folder = save_tiny_llama(tmp_path / "llama", tokenizer_dir)
    plain = load_policy(f"local:{folder}")
    chat = load_policy(f"local:{folder}", chat=True, system="be brief")
    rendered = "<|bos|>system: be brief<|sep|><|bos|>user: def add(a, b):<|sep|><|bos|>assistant: "
    expected = len(chat.codec.tokenizer(rendered, add_special_tokens=False)["input_ids"])
    result = chat.generate_with_usage(["def add(a, b):"], n=2, temperature=0.0, max_tokens=5)
    assert result.prompt_tokens == [expected]
    assert len(result.texts[0]) == 2 and result.texts[0][0] == result.texts[0][1]
    assert plain.generate_with_usage(["def add(a, b):"], max_tokens=5).prompt_tokens[0] < expected
    no_template = save_tiny_llama(tmp_path / "bare", tokenizer_dir, chat_template=None)
    with pytest.raises(ValueError, match="no chat template"):
        load_policy(f"local:{no_template}", chat=True)


# --- the openai backend against a scripted server --------------------------------------------


class ScriptedServer:
    """An OpenAI-shaped HTTP server on loopback: answers each request with the next scripted
    status (then 200), or with `reply(body)` to pick one; records every body it gets."""

    def __init__(self, script=(), reply=None, delay_s=0.0):
        self.script, self.reply, self.delay_s = list(script), reply, delay_s
        self.bodies: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.bodies.append(body)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                    status = stub.script.pop(0) if stub.script else stub.reply(body) if stub.reply else 200
                time.sleep(stub.delay_s)
                with stub.lock:
                    stub.in_flight -= 1
                payload = completion_json(body) if status == 200 else {"error": {"message": f"status {status}"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion_json(body: dict) -> dict:
    text = f"{body['prompt']}|seed={body.get('seed')}"
    return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": body["model"],
            "choices": [{"index": i, "text": f"{text}|{i}", "finish_reason": "stop", "logprobs": None}
                        for i in range(body.get("n", 1))],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2 * body.get("n", 1),
                      "total_tokens": 3 + 2 * body.get("n", 1)}}


def remote(server, tmp_path, **options):
    options = {"cache_dir": str(tmp_path / "cache"), "backoff_s": 0.01, **options}
    return load_policy("openai:m", base_url=server.base_url, **options)


def test_rate_limits_and_server_errors_are_retried_to_success(tmp_path):
    with ScriptedServer(script=[429, 500]) as server:
        policy = remote(server, tmp_path)
        result = policy.generate_with_usage(["p"], max_tokens=4)
    assert result.texts == [["p|seed=None|0"]]
    assert len(server.bodies) == 3
    assert result.usage.retries == 2 and result.usage.requests == 1 and policy.usage.retries == 2
    assert server.bodies[0] == {"model": "m", "prompt": "p", "n": 1, "temperature": 0.0, "max_tokens": 4,
                                "top_p": 1.0}


def test_retries_run_out_and_refusals_are_not_retried(tmp_path):
    with ScriptedServer(script=[503, 503, 503]) as server:
        with pytest.raises(PolicyError, match="gave up after 3 attempts; last: 503"):
            remote(server, tmp_path, max_retries=2).generate(["p"])
    with ScriptedServer(script=[401]) as server:
        with pytest.raises(PolicyError, match=r"refused m \(401\)"):
            remote(server, tmp_path).generate(["p"])
        assert len(server.bodies) == 1


def test_a_lost_connection_is_retried_then_reported(tmp_path):
    with ScriptedServer() as server:
        base_url = server.base_url
    policy = load_policy("openai:m", base_url=base_url, cache=False, max_retries=1, backoff_s=0.0)
    with pytest.raises(PolicyError, match="gave up after 2 attempts; last: connection error"):
        policy.generate(["p"])
    assert policy.usage.retries == 1 and policy.usage.requests == 0  # a failed call's retries still count


def test_a_server_refusing_n_gets_single_requests_with_distinct_seeds(tmp_path):
    with ScriptedServer(reply=lambda body: 400 if body["n"] > 1 else 200) as server:
        policy = remote(server, tmp_path, seed=10, max_concurrency=1)  # one at a time: the refusal is learnt
        result = policy.generate_with_usage(["p", "q"], n=3, temperature=0.8)
        assert [b["n"] for b in server.bodies].count(3) == 1  # asked once, then never again
        assert len(server.bodies) == 1 + 2 * 3
    assert result.texts[0] == ["p|seed=10|0", "p|seed=11|0", "p|seed=12|0"]
    assert result.prompt_tokens == [3, 3] and result.completion_tokens == [6, 6]


def test_concurrency_is_bounded(tmp_path):
    with ScriptedServer(delay_s=0.15) as server:
        result = remote(server, tmp_path, max_concurrency=2).generate([f"p{i}" for i in range(6)])
    assert server.max_in_flight == 2
    assert result == [[f"p{i}|seed=None|0"] for i in range(6)]  # prompt order kept


def test_responses_are_cached_on_disk_per_full_request(tmp_path):
    with ScriptedServer() as server:
        policy = remote(server, tmp_path)
        first = policy.generate(["p"], n=2, temperature=0.9, max_tokens=8)
        again = policy.generate_with_usage(["p"], n=2, temperature=0.9, max_tokens=8)
        assert again.texts == first and len(server.bodies) == 1
        assert again.usage.cache_hits == 1 and again.usage.requests == 0 and again.prompt_tokens == [3]
        for changed in (dict(n=1), dict(temperature=0.5), dict(max_tokens=9), dict(seed=1)):
            call = {**dict(n=2, temperature=0.9, max_tokens=8), **changed}
            remote(server, tmp_path).generate_with_usage(["p"], **call)
        assert len(server.bodies) == 5
        remote(server, tmp_path, cache=False).generate(["p"], n=2, temperature=0.9, max_tokens=8)
        assert len(server.bodies) == 6
    entries = list((tmp_path / "cache").glob("*/*.json"))
    assert len(entries) == 5 and not list((tmp_path / "cache").glob("*/.tmp-*"))
    stored = json.loads(entries[0].read_text())
    assert stored["request"]["base_url"] == server.base_url and stored["request"]["mode"] == "completions"


def test_a_key_is_required_only_for_openais_own_api(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GREENLOOP_OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="no API key"):
        load_policy("openai:gpt-4o-mini")
    monkeypatch.setenv("GREENLOOP_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert load_policy("openai:m", cache_dir=str(tmp_path)).base_url == "http://127.0.0.1:9/v1"
