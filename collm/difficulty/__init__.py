"""Difficulty: cheap signals of how hard a prompt is, each with its FLOPs,
and a learned predictor over them (fitted on a pilot bank)."""

from collm.difficulty.learned import LearnedDifficulty, fit_logistic, sigmoid
from collm.difficulty.signals import SIGNALS, values

__all__ = ["LearnedDifficulty", "SIGNALS", "fit_logistic", "sigmoid", "values"]
