"""The report as text: one self-contained HTML page and a markdown summary.

Both are built from the same rows (`results_rows`), so the page and the
summary can never disagree. The HTML carries its figures as data URIs and
its style inline: one file that opens offline, mails as an attachment and
survives being moved.
"""

from __future__ import annotations

import html

from distillery.report.baseline import YARDSTICK_COLUMNS, ratio_text, yardstick_rows
from distillery.report.data import REFERENCE_COLUMN, Evaluation, fmt_ci, recipe_line

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f1f3f4} td.num{font-family:ui-monospace,monospace;white-space:nowrap}
td.ref{color:#666;font-style:italic;background:#fafafa}
img{max-width:100%;display:block;margin:0.5em 0} .meta{color:#555;font-size:13px}
section{margin-bottom:2em} .scroll{overflow-x:auto} td small{color:#666}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:0.5em;align-items:start}
"""


SIMULATED_NOTE = ("Simulated teachers and ToF (a generated world): the fused depth's error on ToF-valid pixels is "
                  "the simulated ToF's noise level, and how far a relative-teacher version (V1) ends from metres "
                  "follows from the simulated DA2's value range; both are simulator settings, not findings. "
                  "What the students learnt shows in the ratio to the best constant depth.")


YARDSTICK_NOTE = ("What a version's RMSE against truth compares with, on each set's test frames: the best constant "
                  "depth (the mean true depth, chosen with hindsight) and the metric depth teacher, whose labels "
                  "the students learn from where the ToF is not trusted.")


def simulated_note(teachers: list[dict]) -> str | None:
    """The note on simulator settings, when any teacher of the manifest is simulated."""
    return SIMULATED_NOTE if any(t.get("simulated") for t in teachers or []) else None


def results_columns(reference: str) -> list[str]:
    return ["version", "set", "frames", f"RMSE vs {reference} (m)", "RMSE / best constant", "AbsRel", "δ1",
            f"fused RMSE vs {reference} (m)", "student RMSE, ToF-valid px", "fused RMSE, ToF-valid px",
            "mIoU", REFERENCE_COLUMN]


def results_rows(evals: list[Evaluation], reference: str, baselines: dict | None = None,
                 lineage: dict[str, dict] | None = None) -> list[list[str]]:
    """One row per version x set: means with their 95 % CIs, '-' where a reference is absent; the RMSE as a
    ratio to the set's best constant depth (report/baseline.py) where the set has truth; last, the version's
    `reference` text of the lineage config (the reference implementation on real data), '-' without one."""
    rows = []
    for e in evals:
        rows.append([e.version, e.set, str(e.frames),
                     fmt_ci(e.depth(reference, "all", "rmse")),
                     ratio_text(e.depth(reference, "all", "rmse"), (baselines or {}).get(e.set)),
                     fmt_ci(e.depth(reference, "all", "absrel")),
                     fmt_ci(e.depth(reference, "all", "delta1")),
                     fmt_ci(e.depth(reference, "all", "rmse", kind="fused")),
                     fmt_ci(e.depth(reference, "tof_valid", "rmse")),
                     fmt_ci(e.depth(reference, "tof_valid", "rmse", kind="fused")),
                     fmt_ci(e.miou()), str((lineage or {}).get(e.version, {}).get("reference") or "-")])
    return rows


def _short_hash(value: str | None) -> str:
    """The first 16 hex digits of a weights hash; a note in its place (a simulated teacher's) whole."""
    if not value:
        return "-"
    return value[:16] if all(c in "0123456789abcdef" for c in value.lower()) else value


def teacher_rows(teachers: list[dict]) -> list[list[str]]:
    return [[t.get("id", "-"), t.get("task", "-"), t.get("kind") or "-", t.get("backend", "-"),
             str(t.get("weights") or "-"), _short_hash(t.get("weights_sha256"))] for t in teachers]


TEACHER_COLUMNS = ["teacher", "task", "kind", "backend", "weights", "weights SHA-256 (16)"]
QUANT_COLUMNS = ["version", "set", "frames", "δ1 FP32", "δ1 INT8", "AbsRel FP32", "AbsRel INT8", "mIoU FP32",
                 "mIoU INT8"]


def quant_rows(quant: dict[str, dict]) -> list[list[str]]:
    def num(d: dict, k: str) -> str:
        return f"{d[k]:.3f}" if isinstance(d.get(k), (int, float)) else "-"

    return [[v, str(q.get("set", "-")), str(q.get("frames", "-")), num(q["fp32"], "delta1"), num(q["int8"], "delta1"),
             num(q["fp32"], "absrel"), num(q["int8"], "absrel"), num(q["fp32"], "miou"), num(q["int8"], "miou")]
            for v, q in quant.items()]


LINEAGE_COLUMNS = ["version", "parent", "recipe", "encoder started from", "checkpoint chosen on"]


def lineage_rows(lineage: dict[str, dict], encoders: dict[str, str] | None = None) -> list[list[str]]:
    """One row per version; `encoders` says what each encoder started from (its best.pt records it)."""
    return [[v, e.get("parent") or "-", recipe_line(e), (encoders or {}).get(v, "-"),
             str(e.get("val_datasets") or "-")] for v, e in lineage.items()]


def html_table(columns: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for col, cell in zip(columns, row):
            cls = "ref" if col == REFERENCE_COLUMN else ("num" if cell[:1].isdigit() or cell == "-" else "")
            text = html.escape(cell)
            if cls == "num" and " [" in text:  # the interval on its own line, smaller
                mean, ci = text.split(" [", 1)
                text = f"{mean}<br><small>[{ci}</small>"
            cells.append(f'<td class="{cls}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _img(uri: str, alt: str, cls: str) -> str:
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="{uri}">'


def render_html(ctx: dict) -> str:
    """The whole page from the report context built by distillery.report.build."""
    ref = ctx["reference"]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Distillery lineage report</title>"
             f"<style>{STYLE}</style></head><body>",
             "<h1>Distillery lineage report</h1>",
             f"<p class='meta'>Generated {html.escape(ctx['generated'])} from {len(ctx['evals'])} evaluations. "
             f"Manifest <code>{html.escape(ctx['manifest'])}</code> (content id "
             f"<code>{html.escape(ctx['content_id'])}</code>). Headline reference: <b>{html.escape(ref)}</b> depth. "
             "Intervals in brackets are 95 % bootstrap confidence intervals over test sequences; a set with fewer "
             "than five test sequences has none, and shows the range of its sequences' values, labelled so. "
             "The column "
             f"“{REFERENCE_COLUMN}” quotes the reference implementation on real data; it was not measured "
             "by this run.</p>",
             *([f"<p class='meta'><b>Note.</b> {html.escape(simulated_note(ctx['teachers']))}</p>"]
               if simulated_note(ctx["teachers"]) else []),
             "<section id='provenance'><h2>Teachers (labelled the training data)</h2>",
             html_table(TEACHER_COLUMNS, teacher_rows(ctx["teachers"]), "teachers-table")
             if ctx["teachers"] else "<p>The manifest records no teacher.</p>", "</section>",
             "<section id='lineage'><h2>Lineage</h2>", _img(ctx["lineage_graph"], "lineage graph", "plot"),
             html_table(LINEAGE_COLUMNS, lineage_rows(ctx["lineage"], ctx.get("encoders")), "lineage-table"),
             "</section>",
             "<section id='results'><h2>Every version on every evaluation set</h2>",
             html_table(results_columns(ref), results_rows(ctx["evals"], ref, ctx.get("baselines"), ctx["lineage"]),
                        "results-table"),
             *([f"<h3>Yardsticks</h3><p>{YARDSTICK_NOTE}</p>",
                html_table(YARDSTICK_COLUMNS, yardstick_rows(ctx["baselines"]), "yardstick-table")]
               if ctx.get("baselines") else []), "</section>",
             "<section id='plots'><h2>Metrics</h2><div class='grid'>"]
    parts += [_img(uri, title, "plot") for title, uri in ctx["plots"]]
    parts += ["</div></section><section id='panels'><h2>Qualitative panels (fixed test frames)</h2>",
              _img(ctx["legend"], "segmentation legend", "legend")]
    parts += [_img(p["image"], f"panel {p['key']}", "panel") for p in ctx["panels"]]
    parts.append("</section>")
    if ctx["quantization"]:
        parts += ["<section id='deployment'><h2>Deployment: INT8 versus FP32</h2>",
                  html_table(QUANT_COLUMNS, quant_rows(ctx["quantization"]), "quantization-table"),
                  _img(ctx["quant_plot"], "INT8 vs FP32", "plot"), "</section>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def md_table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(ctx: dict, html_name: str) -> str:
    """The markdown summary: the same tables as the page, figures left to the page."""
    ref = ctx["reference"]
    parts = ["# Distillery lineage report", "",
             f"Generated {ctx['generated']}; manifest `{ctx['manifest']}` (content id `{ctx['content_id']}`). "
             f"Plots and qualitative panels: [{html_name}]({html_name}). Intervals in brackets: 95 % bootstrap over "
             "test sequences; with fewer than five, the range of the sequences, labelled so. "
             f"\"{REFERENCE_COLUMN}\" quotes the reference implementation, not this run.", "",
             *([f"**Note.** {simulated_note(ctx['teachers'])}", ""] if simulated_note(ctx["teachers"]) else []),
             "## Teachers", "",
             md_table(TEACHER_COLUMNS, teacher_rows(ctx["teachers"])) if ctx["teachers"] else "No teacher recorded.",
             "", "## Lineage", "", md_table(LINEAGE_COLUMNS, lineage_rows(ctx["lineage"], ctx.get("encoders"))), "",
             "## Results", "",
             md_table(results_columns(ref), results_rows(ctx["evals"], ref, ctx.get("baselines"), ctx["lineage"])),
             ""]
    if ctx.get("baselines"):
        parts += ["### Yardsticks", "", YARDSTICK_NOTE, "", md_table(YARDSTICK_COLUMNS, yardstick_rows(ctx["baselines"])),
                  ""]
    if ctx["quantization"]:
        parts += ["## Deployment: INT8 versus FP32", "", md_table(QUANT_COLUMNS, quant_rows(ctx["quantization"])), ""]
    return "\n".join(parts)
