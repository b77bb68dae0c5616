"""`collabkit report`, its page: exports/report.html from the figures report.py computed.

One self-contained file: the plots are PNGs inlined as data: URLs (matplotlib, Agg), there is no
script and nothing is fetched. Warnings come first, then the class's plots, the item analysis, the
time per notebook and the similar pairs with their cells side by side (shared parts marked).
"""

from __future__ import annotations

import base64
import html
import io


def page(report: dict, runs: dict[str, list]) -> str:
    """The report as one HTML page; `runs`: notebook -> [(seconds, status)] per student."""
    return render_html(report, plots(report, runs))


def plots(report: dict, runs: dict[str, list]) -> dict[str, str]:
    """The report's figures as base64 PNG: score distribution, difficulty x discrimination, time and statuses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}

    def keep(name, fig):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        figs[name] = base64.b64encode(buf.getvalue()).decode()

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(list(report["totals"].values()), bins=min(30, max(5, len(report["totals"]) // 4)), color="#4477aa")
    ax.set(xlabel=f"total score (of {report['max_total']:g})", ylabel="students", title="Score distribution")
    keep("distribution", fig)

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for it in report["cells"]:
        if it["difficulty"] is None:
            continue
        r = it["discrimination"] if it["discrimination"] is not None else 0.0
        colour = "#cc3311" if (it["full"] == 0 or r <= 0) else "#4477aa"
        ax.scatter(it["difficulty"], r, color=colour, s=25)
        ax.annotate(it["grade_id"], (it["difficulty"], r), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(
        xlabel="difficulty (mean score / points; 1 = everyone full marks)",
        ylabel="discrimination (r with the rest of the total)",
        title="Every graded cell (red: nobody passed, or r <= 0; no variance plotted at r = 0)",
        xlim=(-0.05, 1.1),
        ylim=(-1.05, 1.05),
    )
    keep("difficulty_discrimination", fig)

    names = sorted(runs)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.4), gridspec_kw={"wspace": 0.55})
    a1.boxplot([[s for s, _ in runs[n] if s is not None] or [0] for n in names], orientation="horizontal")
    a1.set_yticks(range(1, len(names) + 1), names, fontsize=7)
    a1.set(xlabel="seconds per student", title="Grading time per notebook")
    statuses = sorted({st for n in names for _, st in runs[n]})
    left = [0] * len(names)
    for st in statuses:
        counts = [sum(1 for _, x in runs[n] if x == st) for n in names]
        a2.barh(names, counts, left=left, label=st)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    a2.set_yticks(range(len(names)), names, fontsize=7)
    a2.set(xlabel="students", title="Notebook statuses")
    a2.legend(fontsize=7)
    keep("notebooks", fig)
    return figs


def render_html(report: dict, figs: dict[str, str]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>collabkit report: {e(report['assignment'])}</title><style>",
        "body{font-family:sans-serif;margin:1.5em;max-width:1300px}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}.warn{background:#fff3e0;padding:.4em;"
        "border-left:4px solid #e65100;margin:.3em 0}.pair td{vertical-align:top;width:50%}"
        "pre{white-space:pre-wrap;font-size:11px;margin:0}mark{background:#ffd54f}img{max-width:100%}",
        "</style></head><body>",
        f"<h1>After the grades: {e(report['assignment'])}, {report['students']} students</h1>",
        f"<h2 id='warnings'>Warnings that point at the test ({len(report['warnings'])})</h2>",
    ]
    for w in report["warnings"]:
        parts.append(
            f"<div class='warn'><b>{e(w['cell'])}</b>: {e(w['kind'].replace('_', ' '))}. {e(w['evidence'])}</div>"
        )
    if not report["warnings"]:
        parts.append("<p>None.</p>")
    for bad in report["unreadable_records"]:
        parts.append(f"<div class='warn'>unreadable grading record, left out: {e(bad)}</div>")
    parts.append("<h2>The class</h2>")
    for name, alt in (
        ("distribution", "score distribution"),
        ("difficulty_discrimination", "difficulty by discrimination"),
        ("notebooks", "per-notebook time and statuses"),
    ):
        parts.append(f"<p><img class='plot' alt='{alt}' src='data:image/png;base64,{figs[name]}'></p>")
    parts.append(
        "<h2>Item analysis</h2><table><tr><th>notebook</th><th>cell</th><th>kind</th><th>points</th><th>graded</th>"
        "<th>mean</th><th>difficulty</th><th>full</th><th>zero</th><th>partial</th><th>discrimination</th>"
        "<th>statuses</th><th>most frequent failure messages (students)</th></tr>"
    )
    for it in report["cells"]:
        msgs = "<br>".join(f"{e(m['example'])} ({m['students']})" for m in it["messages"])
        cols = [it["notebook"], it["grade_id"], it["kind"], f"{it['points']:g}", f"{it['graded']}"]
        cols += [_fmt(it[k]) for k in ("mean", "difficulty", "full", "zero", "partial", "discrimination")]
        cols.append(", ".join(f"{k} {v}" for k, v in it["statuses"].items()))
        parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cols) + f"<td>{msgs}</td></tr>")
    parts.append("</table>")
    parts.append(
        "<h2>Time per notebook</h2><table><tr><th>notebook</th><th>students</th><th>median s</th><th>max s</th>"
        "<th>statuses</th></tr>"
    )
    for name, nb in report["notebooks"].items():
        statuses = ", ".join(f"{k} {v}" for k, v in nb["statuses"].items())
        parts.append(
            f"<tr><td>{e(name)}</td><td>{nb['students']}</td><td>{_fmt(nb['seconds_median'])}</td>"
            f"<td>{_fmt(nb['seconds_max'])}</td><td>{e(statuses)}</td></tr>"
        )
    parts.append("</table>")
    sim = report["similarity"]
    parts.append(
        f"<h2 id='similarity'>Similar submissions ({len(sim['pairs'])} pairs)</h2><p>Listed when, after removing the "
        f"release's code and what most of the class wrote alike, the shared part covers at least {sim['threshold']:g} "
        f"of one answer ({e(sim['basis'])}). Shared parts are marked. This is evidence for a person to read, never a "
        "verdict: a short answer, a hint given in class or a common idiom can match by itself.</p>"
    )
    for p in sim["pairs"]:
        parts.append(f"<h3>{e(p['a'])} and {e(p['b'])}: {p['similarity']:.2f}, {len(p['cells'])} cell(s)</h3>")
        for c in p["cells"]:
            parts.append(
                f"<p>{e(c['notebook'])} <b>{e(c['grade_id'])}</b> ({c['kind']}): {c['similarity']:.2f}, "
                f"{c['shared_chars']} shared characters of filtered {'code' if c['kind'] == 'code' else 'text'}</p>"
                f"<table class='pair'><tr><th>{e(p['a'])}</th><th>{e(p['b'])}</th></tr><tr>"
                f"<td><pre>{c['a_html']}</pre></td><td><pre>{c['b_html']}</pre></td></tr></table>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(x) -> str:
    return "" if x is None else f"{x:.2f}"
