"""Pure numerical kernels (numpy/scipy/pandas only; never import backtrader here).

The main kernels, importable from here (``from volbacktest.engine.calculators import
compute_vix``, or ``volbacktest.calculators.compute_vix``):

* VIX-style indices from option chains (:mod:`.vix`): ``compute_vix``, ``get_method``,
  ``VixMethod``;
* Black-Scholes-Merton (:mod:`.bs`): ``bs_price``, ``bs_greeks``, ``implied_vol``;
* risk-neutral densities (:mod:`.rnd`): ``fit_rnd``, ``fit_rnd_chain``, ``rnd_moments``,
  ``rnd_horizon_moments``, ``RNDOptions``;
* Ornstein-Uhlenbeck pairs (:mod:`.ou`): ``fit_ou``, ``rolling_ou_fit``, ``optimal_weight``,
  ``myopic_weight``, ``OUParams``;
* VIX futures and ETNs (:mod:`.futures`, :mod:`.futures_curve`): ``vix_expiries``,
  ``short_term_index``, ``SettleMatrix``, ``constant_maturity``, ``roll_yield``,
  ``futures_index``, ``simulate_etn`` (the daily curve itself is
  ``futures_curve.futures_curve``: here that name is its module's);
* option-pricing anomalies (:mod:`.anomaly`): ``score_cross_section``, ``score_rolling``;
* causal rolling kernels for decision functions (:mod:`.rolling`): ``rolling_mean``,
  ``rolling_std``, ``log_returns``, ``trailing_return``, ``band_switch``.

Each name is imported from its module on first use (PEP 562), so importing one calculator, as
every strategy and sweep worker does, does not load the others.
"""

from __future__ import annotations

import importlib

_HOME = {
    "compute_vix": "vix",
    "get_method": "vix",
    "VixMethod": "vix",
    "bs_price": "bs",
    "bs_greeks": "bs",
    "implied_vol": "bs",
    "fit_rnd": "rnd",
    "fit_rnd_chain": "rnd",
    "rnd_moments": "rnd",
    "rnd_horizon_moments": "rnd",
    "RNDOptions": "rnd",
    "fit_ou": "ou",
    "rolling_ou_fit": "ou",
    "optimal_weight": "ou",
    "myopic_weight": "ou",
    "OUParams": "ou",
    "vix_expiries": "futures",
    "short_term_index": "futures",
    "SettleMatrix": "futures_curve",
    "constant_maturity": "futures_curve",
    "roll_yield": "futures_curve",
    "futures_index": "futures_curve",
    "simulate_etn": "futures_curve",
    "score_cross_section": "anomaly",
    "score_rolling": "anomaly",
    "rolling_mean": "rolling",
    "rolling_std": "rolling",
    "log_returns": "rolling",
    "trailing_return": "rolling",
    "band_switch": "rolling",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
