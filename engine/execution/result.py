"""What one backtest returns, whichever executor ran it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from volbacktest.engine.inputs.config import BacktestConfig


@dataclass(frozen=True)
class BacktestResult:
    config: BacktestConfig
    equity: pd.Series
    returns: pd.Series
    positions: pd.DataFrame  # value per asset + cash (pyfolio layout)
    holdings: pd.DataFrame  # shares per asset
    transactions: pd.DataFrame  # date, symbol, size, price, commission, value
    weights: pd.DataFrame  # target weights decided on each bar
    metrics: dict
    market_notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)
    provenance: tuple[dict, ...] = ()  # the market's, per dataset (run.json)
    # futures runs: equity, initial/maintenance margin and notional per day (else None)
    margin: pd.DataFrame | None = None

    @property
    def label(self) -> str:
        return self.config.name
