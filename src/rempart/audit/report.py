"""``rempart audit report``: what a monitor hands a regulator, as HTML with charts and the same facts in JSON.

One replay of the auditor's mirror (:mod:`rempart.audit.invariants`) with a
:class:`ReportStatistics` observer gives both the findings and the figures:
accesses per purpose and per org over time, access approvals and their
latency (request submitted → threshold of counted approvals met), denials by
reason and by policy, egress volumes by purpose and destination. Every
finding links to its log entry with a C2SP tlog-proof file written next to
the report (``proofs/<index>.tlog-proof``, the entry in its extra line),
against the mirror's verified checkpoint; the JSON carries the proof hashes.

The page needs nothing from the network: styles are inline, charts are SVG
drawn here, there is no script. ``report.json`` holds the same facts as the
page (the page is rendered from it).
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rempart.audit.invariants import DecisionEntry, ReplayResult, replay
from rempart.audit.subject_report import LogView, proof_file, write_file
from rempart.clock import parse_time
from rempart.tlog.merkle import leaf_hash
from rempart.tlog.proof_file import ProofFile

__all__ = [
    "REPORT_FORMAT",
    "ReportFiles",
    "ReportStatistics",
    "build_report",
    "render_html",
    "report_document",
    "write_report",
]

REPORT_FORMAT = "rempart/audit-report/v1"
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


class ReportStatistics:
    """A replay observer that counts what the report charts; every count keyed by plain strings."""

    def __init__(self) -> None:
        self.by_purpose: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_org: dict[str, Counter[str]] = defaultdict(Counter)
        self.decisions = 0
        self.allowed = 0
        self.denials_by_reason: Counter[str] = Counter()
        self.denials_by_policy: Counter[str] = Counter()
        self.denied = 0
        self._submitted: dict[str, tuple[str, int]] = {}
        self.approvals: list[dict[str, Any]] = []
        self.break_glass = 0
        self.egress_by_purpose: Counter[str] = Counter()
        self.egress_by_destination: Counter[str] = Counter()
        self.egress_records_by_purpose: Counter[str] = Counter()
        self.egress_transfers = 0
        self.egress_refused = 0
        self.egress_bytes = 0

    def decision(self, index: int, entry: DecisionEntry) -> None:
        self.decisions += 1
        hour = entry.time[:13]
        self.by_purpose[entry.purpose][hour] += 1
        self.by_org[entry.org][hour] += 1
        if entry.allowed:
            self.allowed += 1
            return
        self.denied += 1
        for f in entry.fields:
            if not f.allowed:
                for reason in f.reasons or ("(no reason given)",):
                    self.denials_by_reason[reason] += 1
                for policy in f.policies or ("(no policy: default deny)",):
                    self.denials_by_policy[policy] += 1

    def event(self, index: int, kind: str, time: str, body: Mapping[str, Any]) -> None:
        if kind == "access.request.submitted":
            request_id = body.get("request_id")
            if isinstance(request_id, str):
                self._submitted[request_id] = (time, index)
        elif kind == "access.request.approved":
            request_id = body.get("request_id")
            submitted = self._submitted.get(request_id) if isinstance(request_id, str) else None
            if submitted is not None:
                latency = (parse_time(time) - parse_time(submitted[0])).total_seconds()
                self.approvals.append(
                    {
                        "request": request_id,
                        "submitted": submitted[0],
                        "approved": time,
                        "latency_seconds": int(latency),
                        "approvers": list(body.get("approvers") or []),
                        "index": index,
                    }
                )
        elif kind == "access.break_glass.opened":
            self.break_glass += 1
        elif kind == "egress.transfer":
            purpose, destination = str(body.get("purpose")), str(body.get("destination"))
            self.egress_transfers += 1
            self.egress_by_purpose[purpose] += 1
            self.egress_by_destination[destination] += 1
            count = body.get("count")
            self.egress_records_by_purpose[purpose] += count if isinstance(count, int) else 0
            size = body.get("bytes")
            self.egress_bytes += size if isinstance(size, int) else 0
        elif kind == "egress.refused":
            self.egress_refused += 1

    def to_json(self) -> dict[str, Any]:
        latencies = [a["latency_seconds"] for a in self.approvals]
        return {
            "accesses": {
                "decisions": self.decisions,
                "allowed": self.allowed,
                "denied": self.denied,
                "per_purpose_per_hour": {
                    k: dict(sorted(v.items())) for k, v in sorted(self.by_purpose.items())
                },
                "per_org_per_hour": {k: dict(sorted(v.items())) for k, v in sorted(self.by_org.items())},
            },
            "approvals": {
                "approved_requests": len(self.approvals),
                "break_glass_grants": self.break_glass,
                "latency_seconds": {
                    "median": int(statistics.median(latencies)) if latencies else None,
                    "max": max(latencies) if latencies else None,
                },
                "requests": self.approvals,
            },
            "denials": {
                "by_reason": dict(self.denials_by_reason.most_common()),
                "by_policy": dict(self.denials_by_policy.most_common()),
            },
            "egress": {
                "transfers": self.egress_transfers,
                "refused": self.egress_refused,
                "bytes": self.egress_bytes,
                "transfers_by_purpose": dict(sorted(self.egress_by_purpose.items())),
                "transfers_by_destination": dict(sorted(self.egress_by_destination.items())),
                "records_by_purpose": dict(sorted(self.egress_records_by_purpose.items())),
            },
        }


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where ``write_report`` put things, and the result it reported."""

    html: Path
    json: Path
    proofs: tuple[Path, ...]
    result: ReplayResult


def _proof_facts(view: LogView, index: int) -> tuple[dict[str, Any], bytes]:
    entry = view.entry(index)
    data = proof_file(view, index, entry)
    parsed = ProofFile.parse(data)
    return (
        {
            "file": f"proofs/{index}.tlog-proof",
            "index": index,
            "leaf_hash": leaf_hash(entry).hex(),
            "hashes": [base64.b64encode(h).decode() for h in parsed.proof],
        },
        data,
    )


def report_document(
    result: ReplayResult,
    stats: ReportStatistics,
    view: LogView,
    proofs: Mapping[int, Mapping[str, Any]],
    *,
    generated: datetime,
) -> dict[str, Any]:
    """The report as one JSON document (what the HTML page shows)."""
    findings = []
    for finding in result.findings:
        doc = finding.to_json()
        doc["proof"] = None if finding.index is None else dict(proofs[finding.index])
        findings.append(doc)
    base = result.to_json()
    base["findings"] = findings
    return {
        "format": REPORT_FORMAT,
        "generated": generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "checkpoint_note": view.checkpoint().decode("utf-8"),
        **base,
        "statistics": stats.to_json(),
    }


def build_report(
    view: LogView,
    *,
    trust_chain: Sequence[bytes] | None = None,
    trust_source: str | None = None,
    now: datetime | None = None,
    mirror_threshold: int | None = None,
) -> tuple[ReplayResult, ReportStatistics]:
    """Replay the view's entries once with the statistics observer."""
    stats = ReportStatistics()
    result = replay(
        view.entries(),
        trust_chain=trust_chain,
        trust_source=trust_source,
        now=now,
        checkpoint=view.checkpoint(),
        mirror_threshold=mirror_threshold,
        observers=[stats],
    )
    return result, stats


def write_report(
    view: LogView,
    out: Path,
    *,
    generated: datetime,
    trust_chain: Sequence[bytes] | None = None,
    trust_source: str | None = None,
    now: datetime | None = None,
    mirror_threshold: int | None = None,
) -> ReportFiles:
    """Replay, then write ``report.json``, ``report.html`` and a proof file per finding into ``out``."""
    result, stats = build_report(
        view, trust_chain=trust_chain, trust_source=trust_source, now=now, mirror_threshold=mirror_threshold
    )
    proofs: dict[int, dict[str, Any]] = {}
    paths: list[Path] = []
    for finding in result.findings:
        if finding.index is None or finding.index in proofs:
            continue
        facts, data = _proof_facts(view, finding.index)
        proofs[finding.index] = facts
        write_file(out / facts["file"], data)
        paths.append(out / facts["file"])
    document = report_document(result, stats, view, proofs, generated=generated)
    write_file(out / "report.json", (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())
    write_file(out / "report.html", render_html(document).encode())
    return ReportFiles(out / "report.html", out / "report.json", tuple(paths), result)


# -- the page ---------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value))


def _svg_lines(title: str, series: Mapping[str, Mapping[str, int]]) -> str:
    """A line chart of counts per hour, one line per series, with a legend."""
    hours = sorted({h for points in series.values() for h in points})
    width, height, left, bottom, top = 720, 260, 50, 40, 30
    if not hours:
        return (
            f'<svg role="img" width="{width}" height="60"><title>{_e(title)}</title>'
            f'<text x="10" y="30">{_e(title)}: no data</text></svg>'
        )
    peak = max(max(points.values()) for points in series.values()) or 1
    span = max(1, len(hours) - 1)
    plot_w, plot_h = width - left - 160, height - top - bottom

    def x(i: int) -> float:
        return left + plot_w * (i / span if len(hours) > 1 else 0.5)

    def y(v: int) -> float:
        return top + plot_h - plot_h * v / peak

    parts = [
        f'<svg role="img" width="{width}" height="{height}">',
        f"<title>{_e(title)}</title>",
        f'<text x="{left}" y="18" font-size="14" font-weight="bold">{_e(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#555"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#555"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="11" text-anchor="end">0</text>',
        f'<text x="{left}" y="{height - 8}" font-size="11">{_e(hours[0])}h</text>',
        f'<text x="{left + plot_w}" y="{height - 8}" font-size="11" text-anchor="end">'
        f"{_e(hours[-1])}h</text>",
    ]
    for n, (name, points) in enumerate(sorted(series.items())):
        color = _COLORS[n % len(_COLORS)]
        coords = " ".join(f"{x(i):.1f},{y(points.get(h, 0)):.1f}" for i, h in enumerate(hours))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        for i, h in enumerate(hours):
            value = points.get(h, 0)
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3" fill="{color}">'
                f"<title>{_e(name)} {_e(h)}h: {value}</title></circle>"
            )
        ly = top + 14 * n
        parts.append(f'<rect x="{left + plot_w + 12}" y="{ly}" width="10" height="10" fill="{color}"/>')
        total = sum(points.values())
        parts.append(
            f'<text x="{left + plot_w + 26}" y="{ly + 9}" font-size="11">{_e(name)} ({total})</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _svg_bars(title: str, items: Mapping[str, int], *, limit: int = 12) -> str:
    """A horizontal bar chart of the largest ``limit`` counts."""
    rows = sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    width, bar, label_w = 720, 18, 330
    height = 30 + (bar + 6) * max(1, len(rows))
    parts = [
        f'<svg role="img" width="{width}" height="{height}">',
        f"<title>{_e(title)}</title>",
        f'<text x="0" y="16" font-size="14" font-weight="bold">{_e(title)}</text>',
    ]
    if not rows:
        parts.append('<text x="0" y="40" font-size="12">none</text>')
    peak = max((v for _, v in rows), default=1) or 1
    for i, (label, value) in enumerate(rows):
        y = 26 + i * (bar + 6)
        shown = label if len(label) <= 52 else label[:51] + "…"
        w = (width - label_w - 60) * value / peak
        parts.append(f'<text x="0" y="{y + 13}" font-size="11"><title>{_e(label)}</title>{_e(shown)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar}" fill="{_COLORS[0]}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" font-size="11">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(doc: Mapping[str, Any]) -> str:
    """The page for ``doc`` (a :func:`report_document`): self-contained, no script, opens offline."""
    stats = doc["statistics"]
    checkpoint = doc["checkpoint"] or {}
    verdict = (
        "no violations" if doc["ok"] else f"{sum(r['violations'] for r in doc['invariants'])} violation(s)"
    )
    summary_rows = [
        [
            _e(r["invariant"]),
            _e(r["promise"]),
            _e(r["checked"]),
            f'<b class="bad">{r["violations"]}</b>' if r["violations"] else "0",
            _e(r["notices"]),
        ]
        for r in doc["invariants"]
    ]
    finding_rows = []
    for f in doc["findings"]:
        proof = f["proof"]
        where = f'<a href="{_e(proof["file"])}">entry {f["index"]}</a>' if proof else "checkpoint"
        related = ", ".join(str(i) for i in f["related"]) or "-"
        finding_rows.append([where, _e(f["invariant"]), _e(f["severity"]), _e(f["message"]), _e(related)])
    approvals = stats["approvals"]
    latency_items = {a["request"]: a["latency_seconds"] for a in approvals["requests"]}
    egress = stats["egress"]
    accesses = stats["accesses"]
    trust = doc["trust_root"]
    sections = [
        f'<h1>Audit report</h1><p class="verdict {"good" if doc["ok"] else "bad"}">{_e(verdict)} in '
        f"{doc['entries']} log entries ({_e(doc['first_time'])} to {_e(doc['last_time'])}).</p>",
        "<p>Trust root: version "
        f"{_e(trust['version_in_force'])} from the {_e(trust['source'])}. Checkpoint: size "
        f"{_e(checkpoint.get('size'))}, root <code>{_e(checkpoint.get('root'))}</code>, cosigned by "
        f"{_e(', '.join(checkpoint.get('cosigned_by', [])) or 'no witness')} (threshold "
        f"{_e(checkpoint.get('witness_threshold'))}). Deadlines judged at {_e(doc['now'])}. Generated "
        f"{_e(doc['generated'])}.</p>",
        "<h2>Invariants</h2>",
        _table(["invariant", "promise", "checked", "violations", "notices"], summary_rows),
        "<h2>Findings</h2>",
        _svg_bars(
            "Violations by invariant",
            {r["invariant"]: r["violations"] for r in doc["invariants"] if r["violations"]},
        ),
        _table(["where (proof)", "invariant", "severity", "what", "related entries"], finding_rows)
        if finding_rows
        else "<p>None.</p>",
        "<h2>Accesses</h2>",
        f"<p>{accesses['decisions']} access decisions: {accesses['allowed']} allowed, "
        f"{accesses['denied']} denied.</p>",
        _svg_lines("Access decisions per purpose, per hour", accesses["per_purpose_per_hour"]),
        _svg_lines("Access decisions per org, per hour", accesses["per_org_per_hour"]),
        "<h2>Approvals</h2>",
        f"<p>{approvals['approved_requests']} approved access requests, median latency "
        f"{_e(approvals['latency_seconds']['median'])} s, longest "
        f"{_e(approvals['latency_seconds']['max'])} s; "
        f"{approvals['break_glass_grants']} break-glass grants.</p>",
        _svg_bars("Approval latency (seconds, request → threshold met)", latency_items),
        "<h2>Denials</h2>",
        _svg_bars("Denied fields by reason", stats["denials"]["by_reason"]),
        _svg_bars("Denied fields by policy", stats["denials"]["by_policy"]),
        "<h2>Egress</h2>",
        f"<p>{egress['transfers']} transfers ({egress['bytes']} bytes), {egress['refused']} refused.</p>",
        _svg_bars("Egress transfers by purpose", egress["transfers_by_purpose"]),
        _svg_bars("Egress transfers by destination", egress["transfers_by_destination"]),
        _svg_bars("Egress records by purpose", egress["records_by_purpose"]),
        "<h2>Checkpoint note</h2>",
        f"<pre>{_e(doc['checkpoint_note'])}</pre>",
        "<p>Each finding links a C2SP tlog-proof file (the entry in its extra line): check it with "
        "<code>rempart audit verify-proof FILE --vkey LOGKEY --witness WITNESSKEY</code> or any C2SP "
        "tool. <code>report.json</code> holds the same facts.</p>",
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Rempart audit report</title>'
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;"
        "text-align:left;vertical-align:top}.bad{color:#b00}.good{color:#070}svg{display:block;"
        "margin:1em 0}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
