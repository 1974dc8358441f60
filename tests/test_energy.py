"""Energy and emissions from FLOPs, checked by hand."""

import pytest

from collm.errors import CollmError
from collm.report.energy import DEFAULT_FLOP_PER_JOULE, DEFAULT_GRID_GCO2_PER_KWH, SOURCES, EnergyModel, per_question


def test_defaults_follow_their_stated_sources():
    # H100 SXM: 989 TFLOP/s dense BF16 at 700 W, at 30% utilisation -> 4.239e11 FLOP/J
    assert DEFAULT_FLOP_PER_JOULE == pytest.approx(0.30 * 989e12 / 700)
    assert DEFAULT_FLOP_PER_JOULE == pytest.approx(4.239e11, rel=1e-3)
    assert DEFAULT_GRID_GCO2_PER_KWH == 481
    assert "H100" in SOURCES["flop_per_joule"] and "Ember" in SOURCES["grid_gco2_per_kwh"]


def test_joules_and_co2_by_hand():
    m = EnergyModel(flop_per_joule=1e12, grid_gco2_per_kwh=500)
    # 3.6e18 FLOPs at 1e12 FLOP/J = 3.6e6 J = 1 kWh -> 500 g CO2e
    assert m.joules(3.6e18) == pytest.approx(3.6e6)
    assert m.gco2e(3.6e18) == pytest.approx(500)
    # the shared bank's greedy answer: ~3.68e11 FLOPs -> 0.368 J, 0.368/3.6e6 kWh * 500 g = 5.1e-5 g
    d = per_question(3.68e11, m)
    assert d["joules"] == pytest.approx(0.368)
    assert d["mg_co2e"] == pytest.approx(1000 * 0.368 / 3.6e6 * 500)


def test_energy_scales_inversely_with_efficiency_and_linearly_with_grid():
    a, b = EnergyModel(1e12, 400), EnergyModel(2e12, 200)
    assert a.joules(1e15) == pytest.approx(2 * b.joules(1e15))
    assert a.gco2e(1e15) == pytest.approx(4 * b.gco2e(1e15))
    assert EnergyModel(1e12, 0).gco2e(1e15) == 0


@pytest.mark.parametrize("fpj,grid", [(0, 481), (-1, 481), (float("nan"), 481), (1e12, -5), (1e12, float("inf"))])
def test_bad_settings_are_user_errors(fpj, grid):
    with pytest.raises(CollmError):
        EnergyModel(fpj, grid)


def test_describe_lists_settings_defaults_and_sources():
    d = EnergyModel(2e12, 100).describe()
    assert d["flop_per_joule"] == 2e12 and d["grid_gco2_per_kwh"] == 100
    assert d["defaults"]["grid_gco2_per_kwh"] == 481 and set(d["sources"]) == {"flop_per_joule", "grid_gco2_per_kwh"}
