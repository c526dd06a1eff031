#!/usr/bin/env bash
# polyroute's benchmark in its own venv (.venvs/bench), so LiteLLM never enters the dev environment.
# Usage: bash bench/run.sh [--quick] [--no-litellm] [--compare-mock]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venvs/bench
if [ ! -x "$VENV/bin/python" ]; then
    uv venv -q -p 3.11 "$VENV"
fi
# --compile-bytecode: import times are measured against warm bytecode, as users see them.
uv pip install -q -p "$VENV" --compile-bytecode -e packages/core openai httpx2 httpx litellm psutil uvicorn starlette
unset PYTHONDONTWRITEBYTECODE
exec "$VENV/bin/python" bench/run.py "$@"
