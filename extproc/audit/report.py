"""The auditor's report: verify the trail, then summarise what it holds.

``build_report`` verifies every chain (a report over a trail that does not verify says so first,
in red) and counts the events of a time window: exchanges by outcome and effect, by subject,
source region → target region, model, denials by rule, findings by type and direction, and the
approvals the trail records. ``render_html`` makes one self-contained page (inline CSS and SVG,
no script, nothing fetched) that an auditor can archive beside the trail; ``as_json`` gives the
same numbers to a machine. Counts only: the trail holds no raw value, and neither does this.
Recorded exchanges (session recordings) are listed with a relative link to their file and the
``extproc audit replay`` command that checks and shows them; their content is never copied in.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extproc.audit.chain_report import VerifyReport
from extproc.audit.read import read_located_events
from extproc.audit.recording import is_recording_name
from extproc.audit.verify import verify


@dataclass(slots=True)
class Report:
    since: str | None
    until: str | None
    verification: VerifyReport
    events: int = 0
    first: str | None = None
    last: str | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    effects: Counter[str] = field(default_factory=Counter)
    subjects: Counter[str] = field(default_factory=Counter)
    flows: Counter[str] = field(default_factory=Counter)  # "eu → eu"
    models: Counter[str] = field(default_factory=Counter)
    denials: Counter[str] = field(default_factory=Counter)  # rule (error)
    findings: Counter[str] = field(default_factory=Counter)  # "request.EMAIL"
    approvals: Counter[str] = field(default_factory=Counter)  # approval status or event
    services: Counter[str] = field(default_factory=Counter)
    recorded: list[dict[str, Any]] = field(default_factory=list)  # newest last
    recorded_total: int = 0


MAX_LISTED_RECORDINGS = 500  # the newest; the total is always shown


def build_report(
    paths: Iterable[Path],
    key: bytes,
    since: str | None = None,
    until: str | None = None,
    links_from: Path | None = None,
) -> Report:
    """``since`` and ``until`` are RFC 3339 UTC prefixes (``2026-11-29`` or
    ``2026-11-29T10:00``) compared as text, which the trail's timestamps sort as.
    ``links_from``: the directory the report is saved in (links to recordings are relative to
    it; default: the current directory)."""
    paths = list(paths)
    report = Report(since, until, verify(paths, key))
    base = Path.cwd() if links_from is None else links_from
    for directory, event in read_located_events(paths):
        moment = str(event.get("time", ""))
        if (since and moment < since) or (until and moment[: len(until)] > until):
            continue
        _count(report, event, moment)
        recording = event.get("recording")
        # Only names the processor writes become links (a relative path under recordings/):
        # the report links to files, never to anything a forged event could name.
        if isinstance(recording, Mapping) and is_recording_name(str(recording.get("file"))):
            _list_recording(report, event, recording, directory, base)
    return report


def _list_recording(
    report: Report,
    event: Mapping[str, Any],
    recording: Mapping[str, Any],
    directory: Path | None,
    base: Path,
) -> None:
    report.recorded_total += 1
    file = str(recording["file"])
    target = file if directory is None else os.path.relpath(directory / file, base)
    report.recorded.append(
        {
            "request_id": str(event.get("request_id", "")),
            "time": str(event.get("time", "")),
            "subject": str(event.get("subject", "")),
            "outcome": str(event.get("outcome", "")),
            "method": str(event.get("method", "")),
            "path": str(event.get("path", "")),
            "file": file,
            "link": Path(target).as_posix(),
            "bytes": recording.get("bytes"),
            "truncated": bool(recording.get("truncated")),
            "replay": f"extproc audit replay {event.get('request_id', '')}",
        }
    )
    if len(report.recorded) > MAX_LISTED_RECORDINGS:
        del report.recorded[0]


def _count(report: Report, event: Mapping[str, Any], moment: str) -> None:
    report.events += 1
    report.first = min(filter(None, (report.first, moment)), default=None)
    report.last = max(filter(None, (report.last, moment)), default=None)
    report.services[str(event.get("service", "?"))] += 1
    outcome = str(event.get("outcome", ""))
    if outcome:
        report.outcomes[outcome] += 1
    if event.get("effect"):
        report.effects[str(event["effect"])] += 1
    if event.get("subject"):
        report.subjects[str(event["subject"])] += 1
    if event.get("source_region") or event.get("target_region"):
        flow = f"{event.get('source_region') or '?'} → {event.get('target_region') or '?'}"
        report.flows[flow] += 1
    if event.get("model"):
        report.models[str(event["model"])] += 1
    if outcome in ("denied", "held"):
        rule = str(event.get("rule", "?"))
        error = event.get("error")
        report.denials[f"{rule} ({error})" if error else rule] += 1
    findings = event.get("findings")
    if isinstance(findings, Mapping):
        for name, count in findings.items():
            if isinstance(count, int):
                report.findings[str(name)] += count
    if event.get("approval_id"):
        report.approvals[str(event.get("approval_status") or outcome or "seen")] += 1


def as_json(report: Report) -> dict[str, Any]:
    verification = report.verification
    return {
        "window": {"since": report.since, "until": report.until},
        "verified": verification.ok,
        "chains": [
            {
                "chain": chain.chain,
                "records": chain.records,
                "events": chain.events,
                "ok": chain.ok,
                "problem": None if chain.problem is None else str(chain.problem),
                "notes": list(chain.notes),
            }
            for chain in verification.chains
        ],
        "errors": list(verification.errors),
        "events": report.events,
        "first": report.first,
        "last": report.last,
        "outcomes": dict(report.outcomes),
        "effects": dict(report.effects),
        "services": dict(report.services),
        "subjects": dict(report.subjects),
        "flows": dict(report.flows),
        "models": dict(report.models),
        "denials": dict(report.denials),
        "findings": dict(report.findings),
        "approvals": dict(report.approvals),
        "recordings": {"total": report.recorded_total, "listed": list(report.recorded)},
    }


# -- HTML ------------------------------------------------------------------------------------------
_COLOURS = {"allowed": "#2e7d32", "denied": "#c62828", "held": "#ef6c00", "dry_run": "#6a1b9a"}
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:960px;color:#1b1b1b}
h1{font-size:1.6rem;margin:0 0 .2rem}h2{font-size:1.15rem;margin:2rem 0 .6rem}
.meta{color:#555}.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}
table{border-collapse:collapse;width:100%}td,th{padding:.3rem .5rem;border-bottom:1px solid #ddd;
text-align:left}th{background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;
padding:.6rem 1rem;min-width:8rem}.card b{display:block;font-size:1.5rem}
.banner{padding:.8rem 1rem;border-radius:6px;margin:1rem 0}
.banner.ok{background:#e8f5e9}.banner.bad{background:#ffebee}
"""


def render_html(report: Report) -> str:
    verification = report.verification
    window = f"{report.since or 'the start'} to {report.until or 'now'}"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>extproc audit report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>extproc audit report</h1>",
        f"<p class=meta>Window: {_e(window)}. Events: {report.events}"
        f" ({_e(report.first or '-')} … {_e(report.last or '-')}).</p>",
        _banner(verification),
        "<div class=cards>",
        *(
            f"<div class=card>{_e(name)}<b>{report.outcomes.get(name, 0)}</b></div>"
            for name in ("allowed", "denied", "held", "dry_run")
        ),
        "</div>",
        "<h2>Verification per chain</h2>",
        _chains_table(verification),
        "<h2>Exchanges by outcome</h2>",
        _bars(report.outcomes, _COLOURS),
        "<h2>Source region → target region</h2>",
        _bars(report.flows),
        "<h2>Denials and holds by rule</h2>",
        _bars(report.denials, default="#c62828"),
        "<h2>Findings by direction and type (counts, never values)</h2>",
        _bars(report.findings, default="#1565c0"),
        "<h2>Exchanges by subject</h2>",
        _table(report.subjects, "subject"),
        "<h2>Models</h2>",
        _table(report.models, "model"),
        "<h2>Approvals</h2>",
        _table(report.approvals, "status") if report.approvals else "<p>None recorded.</p>",
        "<h2>Recorded exchanges</h2>",
        _recordings(report),
        "</body></html>",
    ]
    return "\n".join(parts)


def _banner(verification: VerifyReport) -> str:
    if verification.ok:
        return (
            f"<div class='banner ok'><span class=ok>Verified.</span> {len(verification.chains)}"
            " chain(s): every record is intact, in order, and sealed with the audit key.</div>"
        )
    problems = [str(c.problem) for c in verification.chains if c.problem is not None]
    problems += verification.errors or ([] if verification.chains else ["no audit chain found"])
    items = "".join(f"<li>{_e(p)}</li>" for p in problems)
    return (
        "<div class='banner bad'><span class=bad>Verification failed.</span> The counts below"
        f" cannot be trusted past the first problem:<ul>{items}</ul></div>"
    )


def _chains_table(verification: VerifyReport) -> str:
    rows = "".join(
        f"<tr><td>{_e(c.chain)}</td><td class=n>{c.records}</td><td class=n>{c.events}</td>"
        f"<td>{_e(c.first_time or '-')}</td><td>{_e(c.last_time or '-')}</td>"
        f"<td class={'ok' if c.ok else 'bad'}>{'verified' if c.ok else _e(str(c.problem))}"
        + "".join(f"<br><small>{_e(note)}</small>" for note in c.notes)
        + "</td></tr>"
        for c in verification.chains
    )
    return (
        "<table><tr><th>chain</th><th>records</th><th>events</th><th>first</th><th>last</th>"
        f"<th>status</th></tr>{rows}</table>"
    )


def _recordings(report: Report) -> str:
    """The recorded exchanges, newest first: a link to each file (relative, nothing fetched)
    and the command that verifies its digest and shows it."""
    if not report.recorded:
        return "<p>None.</p>"
    shown = len(report.recorded)
    more = report.recorded_total - shown
    rows = "".join(
        f"<tr><td>{_e(r['time'])}</td><td>{_e(r['request_id'])}</td><td>{_e(r['subject'])}</td>"
        f"<td>{_e(r['outcome'])}</td><td>{_e(r['method'])} {_e(r['path'])}</td>"
        f"<td class=n>{_e(str(r['bytes']))}{' (truncated)' if r['truncated'] else ''}</td>"
        f"<td><a href='{_e(r['link'])}'>{_e(r['file'])}</a><br><code>{_e(r['replay'])}</code>"
        "</td></tr>"
        for r in reversed(report.recorded)
    )
    note = f"<p class=meta>{more} older recorded exchanges are not listed.</p>" if more else ""
    return (
        f"<p class=meta>{report.recorded_total} exchanges recorded in this window. A recording "
        "holds only what the gateway let through after masking; replay checks its digest "
        "against its sealed audit event first.</p>"
        "<table><tr><th>time</th><th>request id</th><th>subject</th><th>outcome</th>"
        f"<th>request</th><th>bytes</th><th>recording</th></tr>{rows}</table>{note}"
    )


def _table(counts: Counter[str], what: str) -> str:
    if not counts:
        return "<p>None.</p>"
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td class=n>{count}</td></tr>"
        for name, count in counts.most_common(50)
    )
    return f"<table><tr><th>{_e(what)}</th><th>events</th></tr>{rows}</table>"


def _bars(
    counts: Counter[str], colours: Mapping[str, str] | None = None, default: str = "#455a64"
) -> str:
    """A horizontal bar chart as inline SVG (the page must work offline and print)."""
    if not counts:
        return "<p>None.</p>"
    items = counts.most_common(20)
    top = max(count for _name, count in items)
    row, label_width, bar_width = 24, 260, 560
    height = row * len(items) + 8
    bars = []
    for index, (name, count) in enumerate(items):
        y = index * row + 4
        width = max(2, round(bar_width * count / top))
        colour = (colours or {}).get(name, default)
        bars.append(
            f"<text x='{label_width - 8}' y='{y + 15}' text-anchor='end'>{_e(name)}</text>"
            f"<rect x='{label_width}' y='{y}' width='{width}' height='{row - 6}' "
            f"fill='{colour}'><title>{_e(name)}: {count}</title></rect>"
            f"<text x='{label_width + width + 6}' y='{y + 15}'>{count}</text>"
        )
    return (
        f"<svg role=img width='100%' viewBox='0 0 {label_width + bar_width + 60} {height}' "
        f"font-size='13' xmlns='http://www.w3.org/2000/svg'>{''.join(bars)}</svg>"
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)
