"""Comparison reports: accuracy, compute, energy, difficulty and fairness of
greedy, uniform best-of-N and collm policies on sample banks, written as
Markdown, JSON, PNG figures and one self-contained HTML page."""

from collm.report.build import build_report
from collm.report.energy import EnergyModel

__all__ = ["build_report", "EnergyModel"]
