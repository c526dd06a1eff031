"""``polyroute usage LEDGER``: spend, calls, tokens, failovers and latency from a SQLite ledger, as a table, JSON or
one self-contained HTML page (inline SVG, no external assets).

Reads rows as plain tuples in batches (a progress bar on large ledgers); a 100,000-record ledger is summarised in a
fraction of a second. The table uses ``rich`` when installed (``polyroute[cli]``), plain text otherwise.
"""

from __future__ import annotations

import html
import json
import math
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

DIMENSIONS = ("route", "deployment", "tag", "user", "day")
_PROGRESS_FROM = 50_000
"""Rows from which a progress bar is shown."""


@dataclass(slots=True)
class Group:
    """Sums for one value of a dimension, and latency percentiles of its calls answered."""

    calls: int = 0
    errors: int = 0
    failovers: int = 0
    failed_attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None

    def row(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "cost": round(self.cost, 6),
            "calls": self.calls,
            "errors": self.errors,
            "failovers": self.failovers,
            "failed_attempts": self.failed_attempts,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 1),
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 1),
        }


@dataclass
class Summary:
    """A ledger summarised by each dimension (``by[dimension][value]``), plus per-day-per-route spend."""

    total: Group = field(default_factory=Group)
    by: dict[str, dict[str, Group]] = field(default_factory=lambda: {d: {} for d in DIMENSIONS})
    spend: dict[str, dict[str, float]] = field(default_factory=dict[str, dict[str, float]])
    """day → route → USD."""
    first: float | None = None
    last: float | None = None

    def to_dict(self, dimensions: Sequence[str]) -> dict[str, Any]:
        """JSON for the chosen dimensions (values by spend, largest first; days in order)."""
        out: dict[str, Any] = {"total": self.total.row(), "from": _iso(self.first), "to": _iso(self.last)}
        for dimension in dimensions:
            out[dimension] = {name: group.row() for name, group in _ordered(dimension, self.by[dimension])}
        return out


_FINE = """SELECT CAST(time / 86400 AS INTEGER) AS d, route, deployment, user, tags, MIN(time), MAX(time),
SUM(kind = 'call'), SUM(kind = 'call' AND status >= 400), SUM(kind = 'call' AND attempts > 1), SUM(kind = 'attempt'),
SUM(CASE WHEN kind = 'call' THEN input_tokens ELSE 0 END), SUM(CASE WHEN kind = 'call' THEN output_tokens ELSE 0 END),
SUM(CASE WHEN kind = 'call' THEN cost ELSE 0 END), GROUP_CONCAT(CASE WHEN kind = 'call' AND status < 400
THEN latency_ms END) FROM usage WHERE time >= ? GROUP BY d, route, deployment, user, tags"""
"""One scan: sums per (day, route, deployment, user, tags), with the latencies of the calls answered; every
dimension is rolled up from these few thousand rows."""


def summarise(
    path: str | Path, since: float | None = None, progress: Callable[[int, int], None] | None = None
) -> Summary:
    """Read the ledger at ``path`` (records from ``since``, epoch seconds) into a :class:`Summary`.

    SQLite groups the records by (day, route, deployment, user, tags) in one scan; the dimensions are rolled up
    from those groups in Python, latency percentiles from the sorted latencies (p50 / p95 = the value at index
    ⌊q·n⌋). ``progress(done, total)`` is called as the groups are read, when the ledger is large.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no ledger at {path}")
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    try:
        start = since if since is not None else float("-inf")
        if progress is not None:
            (rows,) = conn.execute("SELECT COUNT(*) FROM usage WHERE time >= ?", (start,)).fetchone()
            if rows < _PROGRESS_FROM:
                progress = None
        fine = conn.execute(_FINE, (start,)).fetchall()
    finally:
        conn.close()
    summary = Summary()
    latencies: dict[tuple[str, str], list[float]] = {}
    groups_of = summary.by
    day_names: dict[int, str] = {}
    tag_lists: dict[str, list[str]] = {}
    for done, (d, route, deployment, user, tags_json, first, last, *sums, concat) in enumerate(fine, 1):
        day = day_names.get(d)
        if day is None:
            day = day_names[d] = datetime.fromtimestamp(d * 86400, timezone.utc).strftime("%Y-%m-%d")
        if summary.first is None or first < summary.first:
            summary.first = first
        if summary.last is None or last > summary.last:
            summary.last = last
        keys = [("total", ""), ("route", route), ("day", day)]
        if deployment is not None:
            keys.append(("deployment", deployment))
        if user is not None:
            keys.append(("user", user))
        if tags_json:
            tags = tag_lists.get(tags_json)
            if tags is None:
                tags = tag_lists[tags_json] = json.loads(tags_json)
            keys.extend(("tag", tag) for tag in tags)
        values = [float(v) for v in concat.split(",")] if concat else []
        calls, errors, failovers, attempts, tokens_in, tokens_out, cost = sums
        for dimension, name in keys:
            if dimension == "total":
                group = summary.total
            else:
                group = groups_of[dimension].get(name)
                if group is None:
                    group = groups_of[dimension][name] = Group()
            group.calls += calls
            group.errors += errors
            group.failovers += failovers
            group.failed_attempts += attempts
            group.input_tokens += tokens_in or 0
            group.output_tokens += tokens_out or 0
            group.cost += cost or 0.0
            if values:
                latencies.setdefault((dimension, name), []).extend(values)
        if cost:
            per_route = summary.spend.setdefault(day, {})
            per_route[route] = per_route.get(route, 0.0) + cost
        if progress is not None and done % 500 == 0:
            progress(done, len(fine))
    for (dimension, name), values in latencies.items():
        group = summary.total if dimension == "total" else groups_of[dimension][name]
        values.sort()
        group.p50_ms = values[int(0.5 * len(values))]
        group.p95_ms = values[int(0.95 * len(values))]
    if progress is not None:
        progress(len(fine), len(fine))
    return summary


def _ordered(dimension: str, groups: dict[str, Group]) -> list[tuple[str, Group]]:
    if dimension == "day":
        return sorted(groups.items())
    return sorted(groups.items(), key=lambda item: (-item[1].cost, -item[1].calls, item[0]))


def _iso(at: float | None) -> str | None:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if at is not None else None


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, now: float | None = None) -> float:
    """``--since``: ``24h``, ``7d``, ``30m`` (ago), or an ISO date / time (UTC unless it says otherwise)."""
    found = _RELATIVE.match(value.strip())
    if found:
        return (now if now is not None else time.time()) - float(found.group(1)) * _UNITS[found.group(2)]
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {value!r}: use a duration (24h, 7d, 30m) or a date (2026-11-30)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


# -- text -----------------------------------------------------------------------------------------------------


_HEADERS = ("spend $", "calls", "errors", "failovers", "tokens in", "tokens out", "p50 ms", "p95 ms")


def _cells(row: dict[str, Any]) -> list[str]:
    def ms(value: float | None) -> str:  # a tenth of a millisecond below 10 ms (a mock answers in 0.4 ms, not "0")
        if value is None:
            return "–"
        return f"{value:.1f}" if value < 10 else f"{value:,.0f}"

    return [
        f"{row['cost']:,.4f}",
        f"{row['calls']:,}",
        f"{row['errors']:,}",
        f"{row['failovers']:,}",
        f"{row['input_tokens']:,}",
        f"{row['output_tokens']:,}",
        ms(row["p50_ms"]),
        ms(row["p95_ms"]),
    ]


def print_tables(summary: Summary, dimensions: Sequence[str], out: TextIO) -> None:
    """One table per dimension (rich when installed), then the total."""
    data = summary.to_dict(dimensions)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - the plain fallback
        _print_plain(data, dimensions, out)
        return
    console = Console(file=out)
    console.print(f"[bold]polyroute usage[/bold]  {data['from'] or '–'} → {data['to'] or '–'}")
    for dimension in dimensions:
        table = Table(title=f"by {dimension}", title_justify="left", header_style="bold")
        table.add_column(dimension)
        for header in _HEADERS:
            table.add_column(header, justify="right")
        for name, row in data[dimension].items():
            table.add_row(name, *_cells(row))
        table.add_section()
        table.add_row("[bold]total[/bold]", *_cells(data["total"]))
        console.print(table)


def _print_plain(data: dict[str, Any], dimensions: Sequence[str], out: TextIO) -> None:
    print(f"polyroute usage  {data['from'] or '–'} → {data['to'] or '–'}", file=out)
    for dimension in dimensions:
        rows = [[name, *_cells(row)] for name, row in data[dimension].items()]
        rows.append(["total", *_cells(data["total"])])
        header = [dimension, *_HEADERS]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        print(f"\nby {dimension}", file=out)
        for r in [header, *rows]:
            print(
                "  ".join(
                    str(c).ljust(w) if i == 0 else str(c).rjust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                ),
                file=out,
            )


# -- HTML -----------------------------------------------------------------------------------------------------


_PALETTE = ("#4f7cff", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16", "#64748b")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _nice(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent  # pragma: no cover


def _count(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _money(value: float) -> str:
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}"


def _spend_chart(summary: Summary, routes: list[str], colors: dict[str, str]) -> str:
    days = sorted(summary.spend)
    if not days:
        return '<p class="empty">No priced calls in this period.</p>'
    width, height, left, bottom, top = 880, 280, 64, 36, 12
    plot_w, plot_h = width - left - 12, height - bottom - top
    peak = _nice(max(sum(per.values()) for per in summary.spend.values()))
    slot = plot_w / len(days)
    bar = max(min(slot * 0.7, 48), 1)
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Spend per day by route">']
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" class="axis" text-anchor="end">{_money(value)}</text>')
    label_every = max(1, math.ceil(len(days) / 12))
    for index, day in enumerate(days):
        x = left + index * slot + (slot - bar) / 2
        y = top + plot_h
        for route in routes:
            value = summary.spend[day].get(route, 0.0)
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colors[route]}" rx="2">'
                f"<title>{_esc(day)} · {_esc(route)}: {_money(value)}</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 14}" class="axis" text-anchor="middle">'
                f"{_esc(day[5:])}</text>"
            )
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{colors[r]}"></i>{_esc(r)}</span>' for r in routes)
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _latency_chart(rows: list[tuple[str, dict[str, Any]]]) -> str:
    rows = [(name, row) for name, row in rows if row["p95_ms"] is not None][:12]
    if not rows:
        return '<p class="empty">No answered calls in this period.</p>'
    label_w, width, row_h = 220, 880, 34
    height = row_h * len(rows) + 30
    peak = _nice(max(row["p95_ms"] for _, row in rows))
    plot_w = width - label_w - 70
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Latency percentiles by deployment">']
    for i in range(5):
        x = label_w + plot_w * i / 4
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height - 24}" class="grid"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{height - 8}" class="axis" text-anchor="middle">{peak * i / 4:,.0f} ms</text>'
        )
    for index, (name, row) in enumerate(rows):
        y = index * row_h + 6
        p50, p95 = row["p50_ms"] or 0, row["p95_ms"]
        parts.append(
            f'<text x="{label_w - 10}" y="{y + 15}" class="label" text-anchor="end">{_esc(name[:32])}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{plot_w * p95 / peak:.1f}" height="18" rx="3" class="p95">'
            f"<title>{_esc(name)} p95 {p95:,.0f} ms</title></rect>"
            f'<rect x="{label_w}" y="{y + 2}" width="{plot_w * p50 / peak:.1f}" height="18" rx="3" class="p50">'
            f"<title>{_esc(name)} p50 {p50:,.0f} ms</title></rect>"
            f'<text x="{label_w + plot_w * p95 / peak + 6:.1f}" y="{y + 15}" class="axis">'
            f"{p50:,.0f} / {p95:,.0f} ms</text>"
        )
    parts.append("</svg>")
    legend = '<span class="key"><i class="p50"></i>p50</span><span class="key"><i class="p95"></i>p95</span>'
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _failure_chart(days: list[tuple[str, dict[str, Any]]]) -> str:
    if not days:
        return '<p class="empty">No calls in this period.</p>'
    width, height, left, bottom, top = 880, 220, 64, 36, 12
    plot_w, plot_h = width - left - 12, height - bottom - top
    series = (
        ("failed_attempts", "#f59e0b", "failed attempts"),
        ("failovers", "#4f7cff", "failovers"),
        ("errors", "#ef4444", "errors"),
    )
    peak = _nice(max(max(row[key] for key, _, _ in series) for _, row in days))
    slot = plot_w / len(days)
    bar = max(min(slot * 0.8 / 3, 16), 1)
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Failovers and errors per day">']
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" class="axis" text-anchor="end">{_count(peak * i / 4)}</text>'
        )
    label_every = max(1, math.ceil(len(days) / 12))
    for index, (day, row) in enumerate(days):
        x0 = left + index * slot + (slot - 3 * bar) / 2
        for offset, (key, color, name) in enumerate(series):
            h = plot_h * row[key] / peak
            parts.append(
                f'<rect x="{x0 + offset * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{_esc(day)} · {name}: {row[key]:,}</title></rect>'
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x0 + 1.5 * bar:.1f}" y="{height - 14}" class="axis" text-anchor="middle">'
                f"{_esc(day[5:])}</text>"
            )
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{c}"></i>{n}</span>' for _, c, n in series)
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _table(dimension: str, rows: dict[str, dict[str, Any]], limit: int = 25) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in (dimension, *_HEADERS))
    body = "".join(
        f"<tr><td>{_esc(name)}</td>" + "".join(f"<td>{_esc(c)}</td>" for c in _cells(row)) + "</tr>"
        for name, row in list(rows.items())[:limit]
    )
    more = f'<p class="more">{len(rows) - limit} more not shown</p>' if len(rows) > limit else ""
    return f"<h3>By {_esc(dimension)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


_CSS = """
:root{--bg:#f6f7fb;--card:#fff;--ink:#1c2333;--muted:#6b7386;--line:#e5e8ef;--p50:#4f7cff;--p95:#b9c9ff}
@media (prefers-color-scheme:dark){:root{--bg:#0f131c;--card:#171c27;--ink:#e7eaf1;--muted:#8d95a8;--line:#262d3b;
--p95:#2c3f7a}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:960px;margin:0 auto;padding:32px 20px 64px}h1{font-size:22px;margin:0 0 4px}
.sub{color:var(--muted);margin:0 0 24px}.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));
gap:12px;margin-bottom:20px}.card,section{background:var(--card);border:1px solid var(--line);border-radius:12px}
.card{padding:14px 16px}.card b{display:block;font-size:22px;font-variant-numeric:tabular-nums}
.card span{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
section{padding:18px 20px;margin-bottom:20px}h2{font-size:16px;margin:0 0 12px}h3{font-size:14px;margin:20px 0 8px}
svg{width:100%;height:auto;display:block}.grid{stroke:var(--line)}.axis{fill:var(--muted);font-size:11px}
.label{fill:var(--ink);font-size:12px}.p50{fill:var(--p50);background:var(--p50)}.p95{fill:var(--p95);
background:var(--p95)}.legend{display:flex;flex-wrap:wrap;gap:14px;margin-top:8px;color:var(--muted);font-size:12px}
.key i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{padding:6px 8px;
border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}th:first-child,td:first-child{text-align:left;
overflow:hidden;text-overflow:ellipsis;max-width:260px}th{color:var(--muted);font-weight:600;font-size:12px}
tbody tr:hover{background:color-mix(in srgb,var(--p50) 7%,transparent)}.empty,.more{color:var(--muted)}
"""


def render_html(summary: Summary, dimensions: Sequence[str], source: str) -> str:
    """The report as one self-contained HTML page."""
    data = summary.to_dict(DIMENSIONS)
    total = data["total"]
    routes = [name for name, _ in _ordered("route", summary.by["route"])]
    colors = {route: _PALETTE[min(i, len(_PALETTE) - 1)] for i, route in enumerate(routes)}
    calls = total["calls"] or 1
    cards = [
        ("spend", _money(total["cost"])),
        ("calls", f"{total['calls']:,}"),
        ("tokens in / out", f"{_short(total['input_tokens'])} / {_short(total['output_tokens'])}"),
        ("failover rate", f"{100 * total['failovers'] / calls:.1f}%"),
        ("error rate", f"{100 * total['errors'] / calls:.1f}%"),
        ("p50 / p95", f"{_ms(total['p50_ms'])} / {_ms(total['p95_ms'])}"),
    ]
    cards_html = "".join(f'<div class="card"><span>{_esc(k)}</span><b>{_esc(v)}</b></div>' for k, v in cards)
    tables = "".join(_table(d, data[d]) for d in dimensions)
    latency = _latency_chart(list(data["deployment"].items()))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>polyroute usage</title><style>{_CSS}</style></head><body><main>
<h1>polyroute usage</h1>
<p class="sub">{_esc(source)} · {_esc(data["from"] or "–")} → {_esc(data["to"] or "–")}</p>
<div class="cards">{cards_html}</div>
<section><h2>Spend per day, by route</h2>{_spend_chart(summary, routes, colors)}</section>
<section><h2>Latency by deployment (p50 / p95, answered calls)</h2>{latency}</section>
<section><h2>Failovers and errors per day</h2>{_failure_chart(list(data["day"].items()))}</section>
<section><h2>Details</h2>{tables}</section>
</main></body></html>
"""


def _short(value: int) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.1f}{suffix}"
    return str(value)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


# -- the command ----------------------------------------------------------------------------------------------


def run(ledger: str, *, since: str | None, by: str, as_json: bool, html_path: str | None, out: TextIO) -> int:
    """``polyroute usage``: 0 on success, 2 for a bad argument or ledger."""
    dimensions = [d.strip() for d in by.split(",") if d.strip()]
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown or not dimensions:
        print(f"polyroute usage: --by {by!r}: choose from {', '.join(DIMENSIONS)}", file=sys.stderr)
        return 2
    try:
        start = parse_since(since) if since else None
        with _progress(as_json) as progress:
            summary = summarise(ledger, start, progress)
    except (ValueError, FileNotFoundError) as exc:
        print(f"polyroute usage: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # e.g. the config file given instead of its ledger
        print(
            f"polyroute usage: {ledger} is not a usage ledger (the SQLite file usage.ledger names): {exc}",
            file=sys.stderr,
        )
        return 2
    if html_path is not None:
        Path(html_path).write_text(render_html(summary, dimensions, ledger), encoding="utf-8")
        print(f"wrote {html_path}", file=sys.stderr)
    if as_json:
        json.dump(summary.to_dict(dimensions), out, indent=2)
        out.write("\n")
    elif html_path is None:
        print_tables(summary, dimensions, out)
    return 0


class _progress:
    """A rich progress bar on stderr for large ledgers (none when rich is missing, for JSON, or off a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not sys.stderr.isatty()
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Callable[[int, int], None]:
        return self.update

    def update(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            try:
                from rich.progress import Progress
            except ImportError:  # pragma: no cover
                self.quiet = True
                return
            self.bar = Progress(transient=True)
            self.bar.start()
            self.task = self.bar.add_task("summarising the ledger", total=total)
        self.bar.update(self.task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
