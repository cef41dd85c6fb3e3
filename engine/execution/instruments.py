"""What a run trades, and the rules every contract executor shares (issues 12 and 13).

A config trades shares (the backtrader and vectorised executors), VIX futures contracts (a
``futures:`` section, :mod:`engine.execution.futures`) or listed options (an ``options:``
section, :mod:`engine.execution.options`). The contract executors share:

* the refusal of the vectorised fast path (:func:`refuse_fast_path`), which trades shares only;
* the end-of-day fill lag (:func:`end_of_day_lag`): their data are daily settles or closing
  quotes, so ``next_open`` is refused;
* the bar-by-bar evaluation of the decisions (:func:`bar_by_bar_weights`) that their
  runonce/next identity tests compare with the whole-array evaluation.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from volbacktest.engine.errors import ConfigError
from volbacktest.engine.execution.metrics import finite_or_none
from volbacktest.engine.inputs.config import BacktestConfig

Instrument = Literal["shares", "futures", "options"]

_WHY_EVENT_DRIVEN = {
    "futures": "futures contracts (variation margin, margin calls and expiries are event-driven)",
    "options": "options (premiums, expiries, assignment and margin calls are event-driven)",
}
_END_OF_DAY = {
    "futures": "VIX futures are traded at the daily settlement price here (the CFE files carry "
    "settles); use next_close or same_close",
    "options": "the option chains are end-of-day quotes; use same_close (decide and fill at "
    "the day's quotes) or next_close",
}


def instrument(cfg: BacktestConfig) -> Instrument:
    """``futures`` with a ``futures:`` section, ``options`` with an ``options:`` section,
    else ``shares``."""
    if cfg.futures is not None:
        return "futures"
    if cfg.options is not None:
        return "options"
    return "shares"


def trades_contracts(cfg: BacktestConfig) -> bool:
    """True when a contract executor (futures or options) runs ``cfg``."""
    return instrument(cfg) != "shares"


def refuse_fast_path(cfg: BacktestConfig) -> None:
    """The vectorised executor trades shares; a contract config is refused with the way out."""
    kind = instrument(cfg)
    if kind != "shares":
        raise ConfigError(
            f"{cfg.name}: the vectorised (fast) path does not trade {_WHY_EVENT_DRIVEN[kind]}; "
            "run it with `volbacktest run`, or the sweep on the event-driven pool: "
            "`volbacktest sweep SWEEP.yaml --executor local` (or dask)"
        )


def end_of_day_lag(cfg: BacktestConfig) -> int:
    """Bars between a decision and its fill for a contract executor (``next_open`` refused)."""
    kind = instrument(cfg)
    if cfg.execution.fill.uses_open and kind != "shares":
        raise ConfigError(f"{cfg.name}: execution.fill next_open: {_END_OF_DAY[kind]}")
    return cfg.execution.fill.lag


def bar_by_bar_weights(plan, inputs: dict[str, np.ndarray], warmup: int = 0) -> np.ndarray:
    """The decisions evaluated as a per-bar ``next()`` would: row t from the inputs up to t
    only (quadratic; the identity test against the whole-array evaluation uses it). The first
    ``warmup`` rows of ``inputs`` are history before the first traded bar (no row of their own).
    """
    n = len(next(iter(inputs.values())))
    return np.vstack(
        [
            plan.weights({k: v[: t + 1] for k, v in inputs.items()}, warmup=warmup)[-1]
            for t in range(warmup, n)
        ]
    )


def contract_decisions(
    plan, inputs: dict[str, np.ndarray], warmup: int, *, runonce: bool = True
) -> np.ndarray:
    """A contract executor's decisions on its traded bars: once over the whole arrays, or (for
    the runonce/next identity) bar by bar on growing prefixes; ``warmup`` leading rows are
    history."""
    if runonce:
        return plan.weights(inputs, warmup=warmup)
    return bar_by_bar_weights(plan, inputs, warmup=warmup)


def margin_metrics(
    daily: pd.DataFrame, events: list, limited_days: int, stopped: bool
) -> dict[str, object]:
    """What ``metrics.json`` says of a contract run's margin, from its daily ``equity``,
    ``initial_margin`` and ``maintenance_margin``: initial margin / equity (mean over the days
    with margin held, and max), the lowest cushion (equity - maintenance) / equity and its date,
    the margin-call events, the days a target was cut to the margin, and whether a call
    stopped the run."""
    used = daily["initial_margin"] / daily["equity"]
    cushion = (daily["equity"] - daily["maintenance_margin"]) / daily["equity"]
    cushion = cushion[daily["maintenance_margin"] > 0]
    return {
        "margin_used_mean": finite_or_none(used[used > 0].mean()) if (used > 0).any() else 0.0,
        "margin_used_max": finite_or_none(used.max()),
        "margin_cushion_min": finite_or_none(cushion.min()) if len(cushion) else None,
        "margin_cushion_min_date": f"{cushion.idxmin():%Y-%m-%d}" if len(cushion) else None,
        "margin_calls": len(events),
        "margin_call_events": events,
        "margin_limited_days": limited_days,
        "stopped": stopped,
    }
