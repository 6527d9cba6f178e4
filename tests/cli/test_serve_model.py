"""`greenloop serve-model`: a tiny greenloop GPT served by the real app on loopback and
sampled through greenloop's own openai backend (completions, chat, the cache in front of
the server), the wire format as raw JSON, and the command itself in a subprocess."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")

from greenloop.cli import serve_model
from greenloop.policy import load_policy
from greenloop.serve.model_server import BackgroundServer, create_app
from tests.tiny_policy import save_tiny_gpt, save_tokenizer_folder


@pytest.fixture(scope="module")
def gpt_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return save_tiny_gpt(root / "tiny", save_tokenizer_folder(root / "tok"))


@pytest.fixture(scope="module")
def server(gpt_dir):
    with BackgroundServer(create_app(load_policy(f"local:{gpt_dir}"), model_name="tiny-gpt")) as running:
        yield running


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def served(server) -> dict:
    return get(server.url + "/health")["requests"]


def test_completions_and_chat_end_to_end_through_the_openai_backend(server, tmp_path):
    options = dict(base_url=server.base_url, cache_dir=str(tmp_path / "cache"))
    completions = load_policy("openai:tiny-gpt", **options)
    result = completions.generate_with_usage(["def add(a, b):", "x ="], n=3, temperature=0.8, max_tokens=6, seed=1)
    assert [len(texts) for texts in result.texts] == [3, 3]
    assert all(p > 2 for p in result.prompt_tokens) and all(0 < c <= 18 for c in result.completion_tokens)
    greedy = completions.generate(["def add(a, b):"], n=2, temperature=0.0, max_tokens=6)
    assert greedy[0][0] == greedy[0][1]
    chat = load_policy("openai:tiny-gpt", chat=True, system="Write Python.", **options)
    replies = chat.generate_with_usage(["def add(a, b):"], n=2, temperature=0.0, max_tokens=6)
    assert len(replies.texts[0]) == 2 and replies.usage.requests == 1
    counts = served(server)
    assert counts["completions"] >= 3 and counts["chat.completions"] >= 1

    again = completions.generate_with_usage(["def add(a, b):", "x ="], n=3, temperature=0.8, max_tokens=6, seed=1)
    assert again.texts == result.texts and again.usage.cache_hits == 2 and again.usage.requests == 0
    assert served(server) == counts  # the cache answered: the server saw nothing
    assert completions.usage.cache_hits == 2 and completions.usage.requests == 3


def test_the_wire_format_is_openais(server):
    models = get(server.base_url + "/models")
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["tiny-gpt"]
    status, body = post(server.base_url + "/completions",
                        {"model": "tiny-gpt", "prompt": ["a", "b"], "n": 2, "max_tokens": 4, "temperature": 0})
    assert status == 200 and body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert all(c["finish_reason"] in ("stop", "length") and isinstance(c["text"], str) for c in body["choices"])
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] and usage["prompt_tokens"] > 0
    status, body = post(server.base_url + "/chat/completions",
                        {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 3, "stop": "\n"})
    assert status == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant" and body["usage"]["completion_tokens"] <= 3


@pytest.mark.parametrize("path, body, status, message", [
    ("/completions", {"model": "other", "prompt": "x"}, 404, "not served here"),
    ("/completions", {"prompt": "x", "stream": True}, 400, "streaming is not supported"),
    ("/completions", {"prompt": [1, 2, 3]}, 400, "token-id prompts"),
    ("/completions", {"prompt": "x", "n": 0}, 400, "n:"),
    ("/chat/completions", {"messages": []}, 400, "messages:"),
])
def test_bad_requests_get_openai_style_errors(server, path, body, status, message):
    got, answer = post(server.base_url + path, body)
    assert got == status and message in answer["error"]["message"]


def test_help_names_the_endpoints_and_options(capsys):
    parser = argparse.ArgumentParser(prog="greenloop")
    serve_model.add_commands(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["serve-model", "--help"])
    text = capsys.readouterr().out
    for needle in ("/v1/chat/completions", "--gguf-file", "--model-name", "--port", "DIR"):
        assert needle in text


def test_a_missing_model_folder_is_a_clear_error(tmp_path, capsys):
    assert serve_model.main([str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'}: no such model folder" in capsys.readouterr().err


def test_the_command_serves_until_stopped(gpt_dir):
    command = [sys.executable, "-m", "greenloop.cli.serve_model", str(gpt_dir), "--port", "0",
               "--model-name", "cli-gpt", "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(2)]
        assert lines[1].startswith("serving cli-gpt at http://127.0.0.1:"), lines + [process.stderr.read()]
        base_url = lines[1].split(" at ")[1].strip()
        assert [m["id"] for m in get(base_url + "/models")["data"]] == ["cli-gpt"]
        policy = load_policy("openai:cli-gpt", base_url=base_url, cache=False)
        assert len(policy.generate(["def f():"], n=2, temperature=0.5, max_tokens=4)[0]) == 2
    finally:
        process.terminate()
        process.wait(timeout=20)
