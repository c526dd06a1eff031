"""``polyroute demo``: a routed call, a streamed call and a failover, with no API keys needed; ``polyroute check``
validates a config; ``polyroute usage`` reports from a usage ledger.

With no keys the demo runs on embedded mock deployments (same code path as a real provider: routing, stream
translation, failover, usage and cost). With ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` / ``GEMINI_API_KEY`` set,
``polyroute demo --live`` routes the same calls to those providers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

from polyroute import Router, __version__

_LIVE = (
    ("ANTHROPIC_API_KEY", "anthropic", "claude-haiku-4-5"),
    ("OPENAI_API_KEY", "openai", "gpt-4o-mini"),
    ("GEMINI_API_KEY", "gemini", "gemini-2.5-flash"),
)


def demo_config(live: bool) -> dict[str, Any]:
    """The demo's routes: embedded mock deployments, or real providers for which a key is set."""
    if live:
        deployments = [{"provider": p, "model": m} for env, p, m in _LIVE if os.environ.get(env)]
        if not deployments:
            raise SystemExit("--live needs at least one of " + ", ".join(env for env, _, _ in _LIVE))
        broken: dict[str, Any] = {
            "provider": "openai-compatible",
            "model": "down",
            "id": "unreachable-provider",
            "api_base": "http://127.0.0.1:9/v1",
            "timeout": 2,
        }
        return {
            "models": [
                {"name": "smart", "deployments": deployments},
                {"name": "resilient", "deployments": [broken, *deployments]},
            ]
        }
    return {
        "models": [
            {
                "name": "smart",
                "deployments": [
                    {
                        "provider": "mock",
                        "model": "mock-1",
                        "id": "mock-primary",
                        "response": "polyroute routed this call in-process: no server, no network, no API key.",
                        "chunk_delay": 0.04,
                    }
                ],
            },
            {
                "name": "resilient",
                "fallbacks": ["smart"],
                "deployments": [
                    {
                        "provider": "mock",
                        "model": "mock-1",
                        "id": "mock-rate-limited",
                        "error": 429,
                        "error_message": "Rate limit reached (simulated)",
                    },
                    {
                        "provider": "mock",
                        "model": "mock-1",
                        "id": "mock-overloaded",
                        "error": 529,
                        "error_message": "Overloaded (simulated)",
                    },
                    {
                        "provider": "mock",
                        "model": "mock-small",
                        "id": "mock-backup",
                        "response": "Served by the backup deployment after two failures.",
                    },
                ],
            },
        ]
    }


def _rule(title: str) -> None:
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    print(f"\n{bold}── {title} {'─' * max(0, 64 - len(title))}{plain}")


def run_demo(live: bool = False) -> None:
    """Run the three demo calls and print what happened."""
    router = Router(demo_config(live))
    client: Any = router.openai_client()  # the demo reads SDK objects loosely
    messages = [{"role": "user", "content": "Say hello in one sentence."}]
    print(f"polyroute {__version__} demo ({'live providers' if live else 'embedded mock deployments, no keys'})")
    print(f"models: {', '.join(router.model_names)}")

    _rule("1. a routed call")
    started = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(model="smart", messages=messages)  # type: ignore[arg-type]
    completion = raw.parse()
    print(f"answer     : {completion.choices[0].message.content}")
    print(
        f"deployment : {raw.headers.get('x-polyroute-deployment')}   attempts: "
        f"{raw.headers.get('x-polyroute-attempts')}   {1000 * (time.perf_counter() - started):.1f} ms"
    )
    if completion.usage:
        cost = raw.headers.get("x-polyroute-cost")
        print(
            f"usage      : {completion.usage.prompt_tokens} in / {completion.usage.completion_tokens} out"
            + (f"   cost: ${float(cost):.6f}" if cost else "")
        )

    _rule("2. a streamed call (chunks print as they arrive)")
    print("answer     : ", end="", flush=True)
    with client.chat.completions.with_streaming_response.create(
        model="smart",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    ) as response:
        usage: Any = None
        for chunk in response.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="", flush=True)
            usage = chunk.usage or usage
        print(
            f"\ndeployment : {response.headers.get('x-polyroute-deployment')}"
            + (f"   usage: {usage.prompt_tokens} in / {usage.completion_tokens} out" if usage else "")
        )

    _rule("3. a failover")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  log      : %(message)s"))
    log = logging.getLogger("polyroute")
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    try:
        raw = client.chat.completions.with_raw_response.create(model="resilient", messages=messages)  # type: ignore[arg-type]
    finally:
        log.removeHandler(handler)
    print(f"answer     : {raw.parse().choices[0].message.content}")
    print(
        f"deployment : {raw.headers.get('x-polyroute-deployment')}   attempts: "
        f"{raw.headers.get('x-polyroute-attempts')}"
    )
    router.close()


def main(argv: list[str] | None = None) -> int:
    """The ``polyroute`` command; its output piped into a reader that stops early (``| head``) ends it quietly."""
    try:
        return _main(argv)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error flushing stdout at exit
        return 1


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="polyroute", description="Multi-provider LLM routing, in-process.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="route a call, stream a call and fail over (no keys needed)")
    demo.add_argument("--live", action="store_true", help="use real providers whose API keys are set")
    models = sub.add_parser("check", help="validate a config file and list its routes")
    models.add_argument("config", help="a YAML, TOML or JSON config")
    usage = sub.add_parser("usage", help="spend, calls, tokens, failovers and latency from a usage ledger")
    usage.add_argument("ledger", help="the SQLite file named by usage.ledger in the config")
    usage.add_argument("--since", help="a duration (24h, 7d) or a date (2026-11-30)")
    usage.add_argument("--by", default="route,deployment", help="route, deployment, tag, user, day (comma-separated)")
    usage.add_argument("--json", action="store_true", help="print JSON instead of tables")
    usage.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with charts")
    serve = sub.add_parser("serve", help="serve the config's routes over HTTP (OpenAI and Anthropic APIs)")
    serve.add_argument("config", help="a YAML, TOML or JSON config (with `keys:` for clients)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=4000, help="port (default 4000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--no-auth", action="store_true", help="serve without client keys (loopback testing only)")
    key = sub.add_parser("key", help="make a client key for `polyroute serve`, or hash one (--hash, from stdin)")
    key.add_argument("--hash", action="store_true", help="print the sha256 of the key read from stdin")
    args = parser.parse_args(argv)
    if args.command == "usage":
        from polyroute.usage.report import run

        return run(args.ledger, since=args.since, by=args.by, as_json=args.json, html_path=args.html, out=sys.stdout)
    if args.command == "serve":
        return _serve(args)
    if args.command == "key":
        return _key(hash_only=args.hash)
    if args.command == "demo":
        import importlib.util

        if importlib.util.find_spec("openai") is None:
            print("the demo uses the openai SDK: pip install 'polyroute[openai]'", file=sys.stderr)
            return 1
        run_demo(live=args.live)
        return 0
    from polyroute.errors import ConfigError

    try:
        router = Router.from_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    for name in router.model_names:
        route = router.route(name)
        print(
            f"{name}: {route.config.strategy}: "
            + ", ".join(t.label for t in route.targets)
            + (f" → fallbacks {route.fallbacks}" if route.fallbacks else "")
        )
    from polyroute.catalog import similar_models

    for name in router.model_names:
        for target in router.route(name).targets:
            missing = target.missing_key_error()
            if missing is not None:
                print(f"warning: model {name!r}: {missing.message}", file=sys.stderr)
            if not target.info.known and target.spec.catalog_id is not None and not target.spec.quirks.deployment_urls:
                close = similar_models(target.spec, target.model)
                hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else "; check its spelling"
                print(
                    f"warning: model {name!r}: {target.label}: {target.model!r} is not in the model catalog (its "
                    f"capabilities and prices are unknown, so no cost is computed){hint}",
                    file=sys.stderr,
                )
    budgets = router.recorder.budgets if router.recorder is not None else None
    for warning in budgets.unpriced([router.route(n) for n in router.model_names]) if budgets is not None else []:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from polyroute.errors import ConfigError

    if args.no_auth and args.host not in ("127.0.0.1", "localhost", "::1"):
        print("--no-auth is for loopback only: bind 127.0.0.1 or add keys to the config", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"--workers {args.workers}: serve needs at least 1 worker process", file=sys.stderr)
        return 2
    try:
        from polyroute.serve import run

        run(args.config, host=args.host, port=args.port, workers=args.workers, open_access=args.no_auth)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def _key(hash_only: bool) -> int:
    from polyroute.serve.keys import hash_key, new_key

    if hash_only:
        secret = sys.stdin.readline().strip()
        if not secret:
            print("polyroute key --hash reads the key from stdin", file=sys.stderr)
            return 2
        print(hash_key(secret))
        return 0
    secret = new_key()
    print(f"key (give it to the client; it is not stored): {secret}")
    print(f"config entry:\n  - name: <who holds it>\n    sha256: {hash_key(secret)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
