"""Load benchmark of the hosted mode: many concurrent browser sessions on one server.

    python -m bench.load                 # 32 sessions (a warm-up session first)
    python -m bench.load --sessions 48
    python -m bench.load --quick         # 4 sessions

Starts ``streamlit run app/server.py`` on 127.0.0.1, runs one session to warm
the caches, then N concurrent Playwright contexts in Debian's Chromium, each
opening every page from the sidebar and changing a widget. Reports sessions
held, pages served, errors (exception boxes, 'Unexpected error' messages,
pages that never finished), wall time, and the server's memory (RSS of the
process tree) before, after the warm-up and after the run — the growth per
session is what tells whether memory grows with the number of users.
Needs chromium and playwright (make test installs them); no GPU check.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

from bench.browser import (
    chromium_path,
    process_tree_rss,
    run_sessions,
    running_server,
    sidebar_titles,
)
from bench.common import parser, write_and_report

PAGE_TIMEOUT_MS = 600_000


def _titles(url: str) -> list[tuple[str, str]]:
    """(page, title) of every page the server's sidebar shows."""
    return [(title, title) for title in asyncio.run(sidebar_titles(url, PAGE_TIMEOUT_MS))]


def _round(reports, titles, seconds: float) -> dict:
    served = sum(len(r.pages) for r in reports)
    per_page = [p[3] for r in reports for p in r.pages]
    return {
        "sessions": len(reports),
        "pages_served": served,
        "pages_expected": len(reports) * len(titles),
        "errors": sum(1 for r in reports for p in r.pages if p[1]) + sum(1 for r in reports if r.error),
        "unfinished": [r.error for r in reports if r.error],
        "widgets_changed": sum(1 for r in reports for p in r.pages if p[2]),
        "seconds": round(seconds, 1),
        "median_page_s": sorted(per_page)[len(per_page) // 2] if per_page else None,
        "max_page_s": max(per_page) if per_page else None,
    }


def main(argv=None) -> dict:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=32)
    ap.add_argument("--stagger-s", type=float, default=1.0, help="delay between session starts")
    opts = ap.parse_args(argv)
    if not chromium_path():
        raise SystemExit("bench.load needs Debian's chromium on PATH (make test installs it)")
    n = 4 if opts.quick else opts.sessions
    with running_server("app/server.py") as server:
        titles = _titles(server.url)
        rss_start = process_tree_rss(server.proc.pid)
        t0 = time.monotonic()
        warm = asyncio.run(run_sessions(server.url, titles, 1, PAGE_TIMEOUT_MS))
        warm_round = _round(warm, titles, time.monotonic() - t0)
        rss_warm = process_tree_rss(server.proc.pid)
        t0 = time.monotonic()
        reports = asyncio.run(run_sessions(server.url, titles, n, PAGE_TIMEOUT_MS, opts.stagger_s))
        load_round = _round(reports, titles, time.monotonic() - t0)
        rss_end = process_tree_rss(server.proc.pid)
        with urllib.request.urlopen(f"{server.url}/api/ready", timeout=10) as resp:
            ready = json.loads(resp.read())
    growth = (rss_end - rss_warm) / n if rss_end and rss_warm else None
    payload = {
        "pages": [p for p, _ in titles],
        "warm_up_session": warm_round,
        "load": load_round,
        "rss_bytes": {"start": rss_start, "after_warm_up": rss_warm, "after_load": rss_end},
        "rss_growth_per_session_bytes": growth,
        "server_ready": ready.get("ready"),
        "stagger_s": opts.stagger_s,
        "note": "server and all Chromium sessions share this machine's CPUs",
        "summary": [
            f"{n} concurrent sessions x {len(titles)} pages: {load_round['pages_served']} served, "
            f"{load_round['errors']} errors, {load_round['seconds']:.0f} s "
            f"(median page {load_round['median_page_s']} s, max {load_round['max_page_s']} s)",
            f"server RSS {_mib(rss_start)} at start, {_mib(rss_warm)} after one warm session, "
            f"{_mib(rss_end)} after the load ({_mib(growth)} per extra session)",
        ],
    }
    write_and_report("load", payload, out_dir=opts.out)
    return payload


def _mib(n) -> str:
    return "?" if n is None else f"{n / 2**20:,.0f} MiB"


if __name__ == "__main__":
    main()
