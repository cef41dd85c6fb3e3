"""backtrader adapters for option chains: a feed that carries each bar's chain, and the
indicator base that turns a chain series (``engine.chainseries``) into lines.

``OptionChainFeed`` pushes the underlying's daily bars (it is the tradable price feed) and keeps
the long-format chain sorted by trade date; ``chain_between(d0, d1)`` returns the rows of those
trade dates only, so an indicator at bar t can never see a later chain.

``ChainIndicator.for_spec(spec)`` builds (once per spec) an indicator class whose lines are the
spec's columns: ``once`` calls ``spec.compute`` over the whole chain history in one vectorised
pass; ``next`` calls it on the chains of the last ``lookback_days + 1`` bars and keeps the
current bar's row. Chain series are per-date (or fixed-lookback) computations, so both modes give
identical values (tests check it).
"""

from __future__ import annotations

import array

import backtrader as bt
import numpy as np
import pandas as pd

from engine.bt import ArrayFeed
from engine.chainseries import ChainContext, ChainSeriesSpec


class OptionChainFeed(ArrayFeed):
    params = (("chain", None), ("context", None), ("chain_name", ""))

    def __init__(self):
        super().__init__()
        chain: pd.DataFrame = self.p.chain
        order = np.argsort(chain["trade_date"].to_numpy(), kind="stable")
        self._chain = chain.iloc[order].reset_index(drop=True)
        self._chain_dates = self._chain["trade_date"].to_numpy(dtype="datetime64[ns]")
        self.dates = pd.DatetimeIndex(self.p.frame.index)
        self.context: ChainContext = self.p.context

    def chain_between(self, first, last) -> pd.DataFrame:
        """Chain rows with ``first <= trade_date <= last``."""
        lo = np.searchsorted(self._chain_dates, np.datetime64(pd.Timestamp(first), "ns"), "left")
        hi = np.searchsorted(self._chain_dates, np.datetime64(pd.Timestamp(last), "ns"), "right")
        return self._chain.iloc[lo:hi]

    def chain_today(self) -> pd.DataFrame:
        """The point-in-time chain of the current bar."""
        day = self.dates[len(self) - 1]
        return self.chain_between(day, day)


class ChainIndicator(bt.Indicator):
    """Base of indicators computed from an option chain feed (see module docstring)."""

    lines = ()
    series_spec: ChainSeriesSpec | None = None
    _classes: dict[str, type] = {}

    @classmethod
    def for_spec(cls, spec: ChainSeriesSpec) -> type:
        if spec.name not in cls._classes:
            cls._classes[spec.name] = type(
                f"ChainIndicator_{spec.name}",
                (cls,),
                {"lines": tuple(spec.columns), "series_spec": spec, "__module__": __name__},
            )
        return cls._classes[spec.name]

    def _frame(self, chain: pd.DataFrame) -> pd.DataFrame:
        return self.series_spec.compute(chain, self.data.context)

    def next(self):
        feed = self.data
        i = len(feed) - 1
        day = feed.dates[i]
        first = feed.dates[max(0, i - self.series_spec.lookback_days)]
        frame = self._frame(feed.chain_between(first, day))
        row = frame.reindex([day])
        for j, col in enumerate(self.series_spec.columns):
            self.lines[j][0] = float(row[col].iloc[0])

    def once(self, start, end):
        feed = self.data
        dates = feed.dates[:end]
        frame = self._frame(feed.chain_between(dates[0], dates[-1])).reindex(dates)
        for j, col in enumerate(self.series_spec.columns):
            values = frame[col].to_numpy(dtype=np.float64)[start:end]
            self.lines[j].array[start:end] = array.array("d", values)
