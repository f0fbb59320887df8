"""The lineage report: every version on every evaluation set, side by side.

`build_report` (build.py) reads the evaluation JSONs, the lineage config, the
manifest (teacher provenance, frames for the panels) and each version's
best.pt, and writes a self-contained HTML page plus a markdown summary.
data.py loads and checks the inputs, plots.py and panels.py draw the
figures, page.py renders the text; cli.py is `distillery report`.
"""
