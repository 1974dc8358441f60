"""Energy and emissions per question, estimated from FLOPs.

    joules = FLOPs / (FLOP per joule)
    gCO2e  = joules / 3.6e6 (J per kWh) x grid intensity (gCO2e per kWh)

Defaults (both configurable: --flop-per-joule, --grid-gco2-per-kwh):

- Hardware efficiency 4.24e11 FLOP/J: an NVIDIA H100 SXM5 does 989 TFLOP/s
  dense BF16 at its 700 W maximum board power (NVIDIA H100 Tensor Core GPU
  datasheet, 2023), 1.41e12 FLOP/J at peak; at 30% of peak (a typical
  model-FLOPs utilisation for batched serving; small-batch decoding is
  memory-bound and lower) and full board power: 0.30 x 1.41e12 = 4.24e11.
  GPU board only: host CPUs, memory, networking and cooling (PUE) are out.
- Grid intensity 481 gCO2e/kWh: the world-average lifecycle carbon
  intensity of electricity generation in 2023 (Ember, Global Electricity
  Review 2024, and its yearly electricity data).

These are order-of-magnitude estimates for comparing policies, not
measurements: relative savings between rows are what they are good for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from collm.errors import CollmError

H100_PEAK_FLOP_PER_S = 989e12  # dense BF16, SXM5 (NVIDIA datasheet, 2023)
H100_BOARD_POWER_W = 700.0
DEFAULT_UTILISATION = 0.30
DEFAULT_FLOP_PER_JOULE = DEFAULT_UTILISATION * H100_PEAK_FLOP_PER_S / H100_BOARD_POWER_W  # 4.24e11
DEFAULT_GRID_GCO2_PER_KWH = 481.0  # world average 2023, lifecycle (Ember, Global Electricity Review 2024)
J_PER_KWH = 3.6e6

SOURCES = {
    "flop_per_joule": (f"{DEFAULT_FLOP_PER_JOULE:.3g} FLOP/J: NVIDIA H100 SXM5, 989 TFLOP/s dense BF16 at "
                       f"700 W (NVIDIA H100 datasheet, 2023) at {DEFAULT_UTILISATION:.0%} utilisation; "
                       "GPU board only, no host or cooling"),
    "grid_gco2_per_kwh": (f"{DEFAULT_GRID_GCO2_PER_KWH:.0f} gCO2e/kWh: world-average lifecycle intensity of "
                          "electricity generation in 2023 (Ember, Global Electricity Review 2024)"),
}


@dataclass(frozen=True)
class EnergyModel:
    flop_per_joule: float = DEFAULT_FLOP_PER_JOULE
    grid_gco2_per_kwh: float = DEFAULT_GRID_GCO2_PER_KWH

    def __post_init__(self):
        if not (math.isfinite(self.flop_per_joule) and self.flop_per_joule > 0):
            raise CollmError(f"--flop-per-joule must be a positive number, got {self.flop_per_joule!r}")
        if not (math.isfinite(self.grid_gco2_per_kwh) and self.grid_gco2_per_kwh >= 0):
            raise CollmError(f"--grid-gco2-per-kwh must be >= 0, got {self.grid_gco2_per_kwh!r}")

    def joules(self, flops: float) -> float:
        return float(flops) / self.flop_per_joule

    def gco2e(self, flops: float) -> float:
        return self.joules(flops) / J_PER_KWH * self.grid_gco2_per_kwh

    def describe(self) -> dict:
        d = asdict(self)
        d["defaults"] = {"flop_per_joule": DEFAULT_FLOP_PER_JOULE, "grid_gco2_per_kwh": DEFAULT_GRID_GCO2_PER_KWH}
        d["sources"] = SOURCES
        return d


def per_question(flops: float, model: EnergyModel | None = None) -> dict:
    """{"joules": ..., "mg_co2e": ...} for one question costing `flops`."""
    model = model or EnergyModel()
    return {"joules": model.joules(flops), "mg_co2e": 1000.0 * model.gco2e(flops)}
