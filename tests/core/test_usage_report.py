"""``polyroute usage LEDGER``: tables, JSON and the HTML page, from ledgers written by a router and generated."""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from polyroute import Router
from polyroute.__main__ import main
from polyroute.usage import UsageRecord, ledger
from polyroute.usage.report import parse_since, render_html, run, summarise

DAY = 86400.0
START = 1_790_000_000.0 - 1_790_000_000.0 % DAY
ROUTES = {
    "smart": ["anthropic/claude-sonnet-4-5", "openai/gpt-4o"],
    "fast": ["gemini/gemini-2.5-flash", "groq/llama"],
    "embed": ["openai/text-embedding-3-small"],
}


def generate(path: Path, count: int, seed: int = 7) -> list[UsageRecord]:
    """A ledger of ``count`` call records over 30 days (with failed attempts before some of them)."""
    rng = random.Random(seed)
    records: list[UsageRecord] = []
    for i in range(count):
        route = rng.choice(list(ROUTES))
        deployment = rng.choice(ROUTES[route])
        at = START + rng.random() * 30 * DAY
        attempts = 2 if rng.random() < 0.05 else 1
        common: dict[str, Any] = {
            "call_id": f"c{i}",
            "api": "chat.completions",
            "route": route,
            "user": rng.choice(["alice", "bob", None]),
            "tags": (rng.choice(["agent-a", "agent-b"]),),
        }
        if attempts == 2:
            records.append(
                UsageRecord(
                    time=at,
                    kind="attempt",
                    deployment="openai/gpt-4o",
                    provider="openai",
                    model="gpt-4o",
                    status=503,
                    error="server_error",
                    latency_ms=40.0,
                    **common,
                )
            )
        failed = rng.random() < 0.02
        records.append(
            UsageRecord(
                time=at,
                kind="call",
                deployment=None if failed else deployment,
                provider="x",
                model="m",
                status=502 if failed else 200,
                attempts=attempts,
                latency_ms=rng.lognormvariate(6, 0.5),
                input_tokens=0 if failed else rng.randint(10, 4000),
                output_tokens=0 if failed else rng.randint(1, 800),
                cost=None if failed else rng.random() / 100,
                **common,
            )
        )
    conn = ledger.connect(path)
    for start in range(0, len(records), 10_000):
        ledger.write(conn, records[start : start + 10_000])
    conn.close()
    return records


def test_summary_matches_the_records(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    records = generate(path, 2000)
    calls = [r for r in records if r.kind == "call"]
    data = summarise(path).to_dict(["route", "deployment", "tag", "user", "day"])
    total = data["total"]
    assert total["calls"] == len(calls)
    assert total["errors"] == sum(r.status >= 400 for r in calls)
    assert total["failovers"] == sum(r.attempts > 1 for r in calls)
    assert total["failed_attempts"] == len(records) - len(calls)
    assert total["cost"] == pytest.approx(sum(r.cost or 0 for r in calls), abs=1e-5)
    assert total["input_tokens"] == sum(r.input_tokens for r in calls)
    smart = sorted(r.latency_ms for r in calls if r.route == "smart" and r.status < 400)
    assert data["route"]["smart"]["p50_ms"] == pytest.approx(smart[len(smart) // 2], abs=0.05)
    assert data["route"]["smart"]["p95_ms"] == pytest.approx(smart[int(0.95 * len(smart))], abs=0.05)
    assert sum(row["calls"] for row in data["day"].values()) == len(calls)
    assert list(data["day"]) == sorted(data["day"])
    assert data["user"]["alice"]["calls"] == sum(r.user == "alice" for r in calls)
    assert next(iter(data["route"])) == max(data["route"], key=lambda k: data["route"][k]["cost"])


def test_since_keeps_only_later_records(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    records = generate(path, 500)
    cut = START + 20 * DAY
    data = summarise(path, since=cut).to_dict(["route"])
    assert data["total"]["calls"] == sum(r.kind == "call" and r.time >= cut for r in records)
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("2026-11-30") == datetime(2026, 11, 30, tzinfo=timezone.utc).timestamp()
    assert parse_since("2026-11-30T12:00:00+02:00") == datetime(2026, 11, 30, 10, tzinfo=timezone.utc).timestamp()
    with pytest.raises(ValueError, match="--since"):
        parse_since("yesterday")


def test_the_command_prints_tables_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "usage.db"
    router = Router(
        {
            "models": [{"name": "m", "deployments": [{"provider": "mock", "model": "mock-1"}]}],
            "usage": {"ledger": str(path)},
        }
    )
    client = router.openai_client(tags=["cli"], user="carol")
    for _ in range(3):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    router.close()
    assert main(["usage", str(path), "--by", "route,tag,user"]) == 0
    text = capsys.readouterr().out
    assert "by route" in text and "by tag" in text and "carol" in text and "cli" in text
    assert main(["usage", str(path), "--json", "--by", "deployment"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["calls"] == 3 and data["deployment"]["mock/mock-1"]["calls"] == 3
    assert data["total"]["cost"] > 0
    p50 = data["deployment"]["mock/mock-1"]["p50_ms"]
    assert main(["usage", str(path), "--by", "deployment"]) == 0
    text = capsys.readouterr().out
    if p50 < 10:  # a sub-10 ms latency keeps its tenth (a mock answers in well under 1 ms: not "0")
        assert f"{p50:.1f}" in text


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    """``polyroute usage LEDGER --json | head -c 600``: no BrokenPipeError traceback when the reader goes away."""
    path = tmp_path / "usage.db"
    generate(path, 3000)
    command = [sys.executable, "-m", "polyroute", "usage", str(path), "--json", "--by", "route,deployment,tag,user,day"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the report is written, as head is once it has its bytes
    error = process.stderr.read().decode()
    assert process.wait(timeout=60) in (0, 1)
    assert "Traceback" not in error and "BrokenPipe" not in error


def test_bad_arguments_say_what_to_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", str(tmp_path / "missing.db")]) == 2
    assert "no ledger at" in capsys.readouterr().err
    path = tmp_path / "usage.db"
    generate(path, 10)
    assert main(["usage", str(path), "--by", "colour"]) == 2
    assert "polyroute usage: --by 'colour': choose from route, deployment, tag, user, day" in capsys.readouterr().err
    assert main(["usage", str(path), "--since", "soon"]) == 2
    assert "use a duration" in capsys.readouterr().err
    config = tmp_path / "polyroute.yaml"  # the config instead of its ledger
    config.write_text("usage:\n  ledger: usage.db\n" * 20)
    assert main(["usage", str(config)]) == 2
    assert f"polyroute usage: {config} is not a usage ledger (the SQLite file usage.ledger names)" in (
        capsys.readouterr().err
    )


def test_the_html_page_is_self_contained_with_three_charts(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    generate(path, 3000)
    page = render_html(summarise(path), ["route", "deployment"], str(path))
    assert page.startswith("<!doctype html>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no external assets
    assert "<script" not in page
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 3
    for svg in svgs:
        ElementTree.fromstring(svg)  # well-formed
    assert 'aria-label="Spend per day by route"' in page and "smart" in page and "p95" in page
    assert "&lt;" not in page.split("<main>")[0]


def test_a_100000_record_ledger_reports_in_under_two_seconds(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    generate(path, 100_000)
    out = io.StringIO()
    # CPU seconds of this process (SQLite runs in it): what the report costs, not how busy the machine is (CI runs
    # three test environments on two cores)
    started = time.process_time()
    assert (
        run(
            str(path),
            since=None,
            by="route,deployment,tag,user,day",
            as_json=False,
            html_path=str(tmp_path / "report.html"),
            out=out,
        )
        == 0
    )
    html_seconds = time.process_time() - started
    started = time.process_time()
    assert run(str(path), since=None, by="route,deployment,tag,user,day", as_json=False, html_path=None, out=out) == 0
    table_seconds = time.process_time() - started
    print(f"100k records: html {html_seconds:.2f}s, tables {table_seconds:.2f}s")
    assert html_seconds < 2.0 and table_seconds < 2.0
    assert (tmp_path / "report.html").stat().st_size < 400_000
