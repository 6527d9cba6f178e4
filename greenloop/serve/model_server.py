"""A local policy served over the OpenAI API, so any OpenAI client can sample it.

Endpoints (responses in OpenAI's format):

    GET  /v1/models             the one model served
    POST /v1/completions        prompt (a string or a list of them) continued: `choices[i].text`
    POST /v1/chat/completions   messages answered: `choices[i].message.content`, rendered with the
                                tokenizer's chat template (without one: the messages' contents
                                joined by blank lines, as a plain prompt)
    GET  /health                status, the requests served per endpoint, token usage

Requests take `n`, `temperature` (0 is greedy), `top_p`, `max_tokens` (chat also
`max_completion_tokens`), `stop` and `seed`; `usage` counts prompt tokens once per prompt
and the completion tokens of every choice. Streaming and token-id prompts are refused with
a 400 in OpenAI's error format, as is a `model` other than the one served. Generation runs
one request at a time (the model is shared); the HTTP side stays responsive.

`serve(app, host, port)` runs it in the foreground (`greenloop serve-model`);
`BackgroundServer` runs it on a thread, for tests and for a loop that samples its own model.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import Counter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from greenloop.policy import Generation

MAX_N = 128


class _Sampling(BaseModel):
    model: str | None = None
    n: int = Field(1, ge=1, le=MAX_N)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]


class ChatMessage(BaseModel):
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


def _error_response(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}},
                        status_code=status)


class RequestCounter:
    """Requests served per endpoint; `/health` shows them (tests read them to see the cache work)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, endpoint: str) -> None:
        with self._lock:
            self._counts[endpoint] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def _add_error_handlers(app: FastAPI) -> None:
    """Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`."""

    @app.exception_handler(OpenAIError)
    async def openai_error(request: Request, exc: OpenAIError) -> JSONResponse:
        return _error_response(exc.status, exc.message, exc.kind, exc.code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return _error_response(400, where or "invalid request", "invalid_request_error")

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return _error_response(400, str(exc), "invalid_request_error")


def create_app(policy, model_name: str | None = None, default_max_tokens: int = 256) -> FastAPI:
    """An app serving `policy` as `model_name` (default: the policy's name). A `LocalPolicy`
    renders chat messages with its chat template; other policies get them as one prompt."""
    name = model_name or policy.name
    app = FastAPI(title=f"greenloop model server: {name}")
    app.state.policy, app.state.model_name = policy, name
    app.state.requests, app.state.started = RequestCounter(), int(time.time())
    count = app.state.requests.add
    _add_error_handlers(app)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "requests": app.state.requests.snapshot(),
                "usage": policy.usage.as_dict()}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        count("models")
        return {"object": "list", "data": [{"id": name, "object": "model", "created": app.state.started,
                                            "owned_by": "greenloop"}]}

    @app.post("/v1/completions")
    def completions(request: CompletionRequest) -> dict[str, Any]:
        count("completions")
        _check(request, name)
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise OpenAIError(400, "prompt: token-id prompts are not supported; send text")
        generation = policy.generate_with_usage(prompts, **_sampling(request, request.max_tokens, default_max_tokens))
        return _response("cmpl", "text_completion", name, generation,
                         lambda text: {"text": text, "logprobs": None})

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatRequest) -> dict[str, Any]:
        count("chat.completions")
        _check(request, name)
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        max_tokens = request.max_completion_tokens or request.max_tokens
        sampling = _sampling(request, max_tokens, default_max_tokens)
        if hasattr(policy, "generate_chat"):
            generation = policy.generate_chat([messages], **sampling)
        else:  # a policy without chat rendering: the messages as one plain prompt
            generation = policy.generate_with_usage(["\n\n".join(m["content"] for m in messages)], **sampling)
        return _response("chatcmpl", "chat.completion", name, generation,
                         lambda text: {"message": {"role": "assistant", "content": text}, "logprobs": None})

    return app


def _check(request: _Sampling, name: str) -> None:
    if request.stream:
        raise OpenAIError(400, "stream: streaming is not supported by this server")
    if request.model and request.model != name:
        raise OpenAIError(404, f"model {request.model!r} is not served here; this server serves {name!r}",
                          code="model_not_found")


def _sampling(request: _Sampling, max_tokens: int | None, default_max_tokens: int) -> dict[str, Any]:
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    return {"n": request.n, "temperature": request.temperature, "max_tokens": max_tokens or default_max_tokens,
            "top_p": request.top_p, "stop": stop, "seed": request.seed}


def _response(prefix: str, kind: str, name: str, generation: Generation, body) -> dict[str, Any]:
    """OpenAI's response object; choice i*n + j is prompt i's sample j."""
    choices = [{"index": len(texts) * i + j, **body(text), "finish_reason": finish}
               for i, (texts, reasons) in enumerate(zip(generation.texts, generation.finish_reasons))
               for j, (text, finish) in enumerate(zip(texts, reasons))]
    prompt_tokens, completion_tokens = sum(generation.prompt_tokens), sum(generation.completion_tokens)
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": name,
            "choices": choices, "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                          "total_tokens": prompt_tokens + completion_tokens}}


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket listening on (host, port); port 0 picks a free one (read it from getsockname).
    Listening before the server starts queues early clients instead of refusing them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve in the foreground until interrupted; prints the base URL first (the real port
    when `port` is 0)."""
    import uvicorn

    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]
    print(f"serving {app.state.model_name} at http://{_url_host(host)}:{bound}/v1", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class BackgroundServer:
    """`with BackgroundServer(app) as server:` serves on a free loopback port in a thread;
    `server.base_url` is the OpenAI base URL (`http://127.0.0.1:PORT/v1`)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 30.0):
        import uvicorn

        self._sock = bind_socket(host, port)
        self.url = f"http://{_url_host(host)}:{self._sock.getsockname()[1]}"
        self.base_url = self.url + "/v1"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._start_timeout_s = start_timeout_s

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the model server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
