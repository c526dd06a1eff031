"""What ``polyroute serve`` says when it starts: one line saying where it listens, and a warning for each piece of
state that ``--workers N`` would silently split.

uvicorn's workers are processes: whatever a router keeps in memory, each worker keeps its own copy of, and a client's
next request lands on any of them. What that breaks, and what only loosens:

- the in-memory Responses store: ``previous_response_id`` and ``GET /v1/responses/{id}`` fail whenever the next
  request reaches another worker (half the time with two). Chat Completions and Messages clients (Claude Code, Aider)
  never use it, so it is a warning, not a refusal: a server that only they call works with any number of workers;
- deployment limits (``rpm``, ``tpm``, ``max_parallel``) and ``budgets:`` without ``state: {backend: redis}``: each
  worker counts its own, so together they allow up to N times the limit (and N times the money);
- a key's ``rpm``: always counted per worker (Redis or not), so N times the configured rate.

Not warned about, as no config changes it and nothing fails: the Anthropic / Gemini thinking store (a tool loop
whose turn reaches another worker without its thinking blocks is answered with thinking off for that request, with a
warning, as after a restart; clients that send the blocks back, Claude Code among them, never need it), and each
worker's own cooldowns and latency averages (each learns a failing deployment on its own; ``state: redis`` shares
them).
"""

from __future__ import annotations

from polyroute.config import RouterConfig

MAX_NAMED_ROUTES = 6
"""Route names the startup line lists before it says how many more there are."""


def responses_store(config: RouterConfig) -> str:
    """The kind of Responses store ``config`` makes: ``memory``, ``sqlite`` or ``redis`` (as ``store_for`` picks)."""
    settings = config.responses
    if settings.store == "redis":
        return "redis"
    if settings.store_path and settings.store_path != ":memory:":  # SQLite's :memory: is this process's alone
        return "sqlite"
    return "memory"


def worker_warnings(config: RouterConfig, workers: int) -> list[str]:
    """What ``workers`` processes would each keep apart from the others, and how to share it; none for one."""
    if workers <= 1:
        return []
    warnings: list[str] = []
    if responses_store(config) == "memory":
        warnings.append(
            f"the Responses store is in memory, one per worker: with {workers} workers, previous_response_id and "
            "GET /v1/responses/{id} fail with 'not found' whenever a request reaches another worker than the one "
            "that answered. Set responses: {store_path: responses.db} (one SQLite file for all workers) or "
            "responses: {store: redis}, or serve with --workers 1 (clients of /v1/chat/completions and /v1/messages "
            "are not affected)"
        )
    if config.state.backend != "redis":
        limited = [
            route.name for route in config.models if any(d.rpm or d.tpm or d.max_parallel for d in route.deployments)
        ]
        counted = [f"rpm/tpm/max_parallel of {', '.join(limited)}"] if limited else []
        if config.budgets:
            counted.append(f"budgets ({', '.join(b.name for b in config.budgets)})")
        if counted:
            warnings.append(
                f"{' and '.join(counted)} count in each worker: {workers} workers together allow up to {workers} "
                "times each limit. Set state: {backend: redis, url: ...} to count them across workers"
            )
    rated = [key.name for key in config.keys if key.rpm is not None]
    if rated:
        warnings.append(
            f"keys[].rpm ({', '.join(rated)}) counts in each worker: {workers} workers accept up to {workers} times "
            "a key's rpm"
        )
    return warnings


def listening_line(config: RouterConfig, url: str, workers: int, *, open_access: bool = False) -> str:
    """``polyroute serve: listening on <url> (2 workers; routes: a, b; responses store: memory)``: no keys, ever."""
    names = [route.name for route in config.models]
    shown = ", ".join(names[:MAX_NAMED_ROUTES]) or "none"
    if len(names) > MAX_NAMED_ROUTES:
        shown += f" and {len(names) - MAX_NAMED_ROUTES} more"
    parts = [
        f"{workers} worker{'s' if workers != 1 else ''}",
        f"routes: {shown}",
        f"responses store: {responses_store(config)}",
    ]
    if open_access:
        parts.append("no auth")
    return f"polyroute serve: listening on {url} ({'; '.join(parts)})"
