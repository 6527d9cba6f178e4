"""`greenloop serve-model`: a local model behind an OpenAI-compatible HTTP API."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Serve a model folder over the OpenAI API on HOST:PORT:
  GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET /health.

DIR is a greenloop gpt/hrm folder as training saves it (best/, final/), a transformers
causal LM folder, or a folder holding a .gguf file (or the .gguf file itself; needs the
`gguf` package). Any OpenAI client can then sample it, greenloop's own included:

  greenloop serve-model runs/gpt/best --port 8000
  curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\
       -d '{"model": "best", "prompt": "def add(a, b):", "max_tokens": 64}'
  python -c 'from greenloop.policy import load_policy
  p = load_policy("openai:best", base_url="http://127.0.0.1:8000/v1")
  print(p.generate(["def add(a, b):"], n=2, temperature=0.8))'

The server binds to loopback by default; it has no authentication, so think before
--host 0.0.0.0. --port 0 picks a free port (the line 'serving NAME at URL' names it).
"""


def add_commands(commands) -> None:
    p = commands.add_parser("serve-model", help="serve a model folder over an OpenAI-compatible HTTP API",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="DIR", help="model folder (greenloop or transformers) or a .gguf file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0: any free port)")
    p.add_argument("--model-name", help="the model id clients send and /v1/models lists (default: DIR's name)")
    p.add_argument("--gguf-file", metavar="F", help="the .gguf file inside DIR to load (when it holds several)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", help="torch dtype to run in, e.g. bfloat16 (default: as saved)")
    p.add_argument("--seed", type=int, default=0, help="seeds the samples of requests that send no seed (default 0)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per generate() call (default 16)")
    p.add_argument("--max-tokens", type=int, default=256,
                   help="tokens generated when a request sets no max_tokens (default 256)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default info)")
    p.set_defaults(run=run_serve_model)


def run_serve_model(args) -> int:
    from greenloop.policy.local import load_local_policy
    from greenloop.serve.model_server import create_app, serve

    if args.max_tokens < 1:
        raise ValueError(f"--max-tokens {args.max_tokens}: must be at least 1")
    policy = load_local_policy(args.model, gguf_file=args.gguf_file, device=args.device, dtype=args.dtype,
                               seed=args.seed, batch_size=args.batch_size, name=args.model_name)
    app = create_app(policy, default_max_tokens=args.max_tokens)
    print(f"loaded {args.model} on {policy.device}", flush=True)
    serve(app, args.host, args.port, log_level=args.log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m greenloop.cli.serve_model DIR ...`: the command on its own."""
    from greenloop.cli import _guarded

    parser = argparse.ArgumentParser(prog="greenloop")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(["serve-model", *(sys.argv[1:] if argv is None else argv)])
    return _guarded("serve-model", lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
