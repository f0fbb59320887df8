"""What a run will cost, before it runs: `distillery plan` (docs/plan.md).

`make_plan` dry-runs the user's Snakemake command (their config, profile and
targets) and prices every job from the benchmark records of earlier runs or
documented defaults; `rulegraph_svg` draws the workflow's rule graph for
reports.
"""

from distillery.plan.build import make_plan
from distillery.plan.estimate import Plan, RuleEstimate
from distillery.plan.graph import rulegraph_svg

__all__ = ["Plan", "RuleEstimate", "make_plan", "rulegraph_svg"]
