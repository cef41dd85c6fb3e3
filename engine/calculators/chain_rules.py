"""Pure rules over a long option chain (data.chains schema) shared by the loaders and the VIX.

* :func:`adjusted_drop_mask`: which dividend-adjusted contracts a policy (:data:`AdjustedMode`)
  removes; ``data.chains.apply_policy`` and ``calculators.vix.compute_vix`` both apply it;
* :func:`sse_grid_step` / :func:`sse_offgrid_strike`: the SSE 50ETF strike grid;
* :func:`counts_by_period`: what a policy dropped or kept, per year (or other period).

Frames and arrays in, arrays out: no file access (the loaders live in ``data.chains``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from volbacktest.engine.errors import DataError

# price columns of the long chain schema (data.chains.CHAIN_COLUMNS)
PRICE_COLUMNS: tuple[str, ...] = ("bid", "ask", "last", "close", "settle", "prev_settle")

# SSE 50ETF strike grid in thousandths of CNY: 0.05 up to 3 CNY, 0.1 up to 5, 0.25 up to 10,
# 0.5 above (SSE contract specification). A strike off this grid (e.g. 2.006, 2.46, 3.24) can
# only be a dividend-adjusted "A" contract.
_SSE_GRID_MILLI = ((3_000, 50), (5_000, 100), (10_000, 250))
_SSE_GRID_MILLI_ABOVE = 500

AdjustedMode = Literal["standard_grid", "prefer_standard", "keep", "drop"]
ADJUSTED_MODES: tuple[str, ...] = ("standard_grid", "prefer_standard", "keep", "drop")
# standard_grid: the fewest standard strikes a (trade_date, expiry) needs for its adjusted
# contracts to be left out (with fewer, the adjusted strikes are the strip)
MIN_STANDARD_STRIKES = 3


def sse_offgrid_strike(strike: np.ndarray | pd.Series) -> np.ndarray:
    """True where a strike is off the SSE 50ETF strike grid (so a dividend-adjusted contract).

    3-decimal strikes (2.006) are always off the grid; 2-decimal ones such as 2.46 or 3.24 are
    off it too. Adjusted strikes that happen to land on the grid (2.25) cannot be told from a
    standard contract by the strike alone (use the contract list).
    """
    milli = np.rint(np.asarray(strike, dtype=float) * 1000.0).astype(np.int64)
    step = np.full(milli.shape, _SSE_GRID_MILLI_ABOVE, dtype=np.int64)
    for upper, s in reversed(_SSE_GRID_MILLI):
        step = np.where(milli <= upper, s, step)
    off_milli = np.abs(np.asarray(strike, dtype=float) * 1000.0 - milli) > 1e-6
    return (milli % step != 0) | off_milli


def sse_grid_step(strike: np.ndarray | pd.Series) -> np.ndarray:
    """SSE 50ETF strike step (CNY) at each strike: 0.05 up to 3, 0.1 up to 5, 0.25 up to 10."""
    milli = np.rint(np.asarray(strike, dtype=float) * 1000.0)
    step = np.full(milli.shape, float(_SSE_GRID_MILLI_ABOVE))
    for upper, s in reversed(_SSE_GRID_MILLI):
        step = np.where(milli <= upper, float(s), step)
    return step / 1000.0


def adjusted_drop_mask(df: pd.DataFrame, mode: AdjustedMode) -> np.ndarray:
    """Rows the adjusted-contract policy ``mode`` removes (see ``data.chains.ChainPolicy``).

    ``"standard_grid"`` (the ``sse_ivix`` rule): per (trade_date, expiry), every adjusted row is
    dropped when at least :data:`MIN_STANDARD_STRIKES` distinct priced standard strikes exist
    (the strip then stands on the SSE grid alone); otherwise (right after an ex-dividend date,
    when an expiry may list only adjusted series) all its rows are kept. An adjusted contract
    covers 10,000 units plus the dividend adjustment, so its premium per unit is a price of a
    different payoff; mixing it into a strip of standard strikes adds points off the grid.
    ``"prefer_standard"``: an adjusted row is dropped when a priced standard contract of the
    same (trade_date, expiry, cp) lies within half a strike step (SSE grid) of its strike, i.e.
    the adjusted contract only duplicates a standard strike; adjusted strikes that fill gaps or
    extend the range are kept. Vectorised with one ``merge_asof`` (nearest standard strike).
    """
    n = len(df)
    if mode == "keep" or "adjusted" not in df.columns or n == 0:
        return np.zeros(n, dtype=bool)
    adjusted = df["adjusted"].to_numpy(dtype=bool, na_value=False)
    if mode == "drop":
        return adjusted
    if mode not in ("prefer_standard", "standard_grid"):
        raise DataError(f"adjusted={mode!r} is not a policy; use one of {ADJUSTED_MODES}")
    if not adjusted.any():
        return adjusted
    priced = np.zeros(n, dtype=bool)
    for c in PRICE_COLUMNS:
        if c in df.columns:
            priced |= np.isfinite(df[c].to_numpy(dtype=float, na_value=np.nan))
    # integer key of (trade_date, expiry): days since the epoch fit in 5 decimal digits
    td_day = df["trade_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    ex_day = df["expiry"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    term = td_day * 100_000 + ex_day
    if mode == "standard_grid":
        std = ~adjusted & priced
        milli = np.rint(df["strike"].to_numpy(dtype=float) * 1000.0).astype(np.int64)
        if not std.any():
            return np.zeros(n, dtype=bool)
        # distinct (term, strike) pairs as one int64 key (term < 4e9, strike below 1e6)
        pairs = np.unique(term[std] * 1_000_000_000 + milli[std]) // 1_000_000_000
        terms, n_std = np.unique(pairs, return_counts=True)
        pos = np.minimum(np.searchsorted(terms, term), len(terms) - 1)
        enough = (terms[pos] == term) & (n_std[pos] >= MIN_STANDARD_STRIKES)
        return adjusted & enough
    is_call = (df["cp"] == "C").to_numpy(dtype=bool, na_value=False)
    gid = term * 2 + is_call
    frame = pd.DataFrame({"gid": gid, "strike": df["strike"].to_numpy(dtype=float)})
    frame["row"] = np.arange(n)
    std = frame.loc[~adjusted & priced].rename(columns={"row": "std_row"})
    std = std.assign(std_strike=std["strike"]).sort_values("strike", kind="stable")
    adj = frame.loc[adjusted].sort_values("strike", kind="stable")
    near = pd.merge_asof(
        adj, std[["strike", "gid", "std_strike"]], on="strike", by="gid", direction="nearest"
    )
    dist = np.abs(near["strike"].to_numpy() - near["std_strike"].to_numpy(dtype=float))
    covered = dist < 0.5 * sse_grid_step(near["strike"].to_numpy()) + 1e-9
    out = np.zeros(n, dtype=bool)
    out[near["row"].to_numpy()[covered]] = True
    return out


def counts_by_period(
    trade_date: np.ndarray | pd.Series, masks: dict[str, np.ndarray], freq: str = "Y"
) -> pd.DataFrame:
    """Rows per period (``freq``: ``"Y"`` years, ``"M"`` months) and how many each mask marks.

    ``masks`` maps a label (``"dropped: adjusted (standard_grid)"``, ``"kept: adjusted"``) to a
    boolean row mask; the result has one row per period with ``first``/``last`` trade date,
    ``rows`` and one column per label, so a policy's effect can be read per date range.
    """
    if freq not in ("Y", "M"):
        raise DataError(f"freq={freq!r}: count per 'Y' (year) or 'M' (month)")
    td = np.asarray(trade_date, dtype="datetime64[ns]")
    key = td.astype(f"datetime64[{freq}]").view(np.int64)  # periods since 1970
    lo = int(key.min()) if len(key) else 0
    seen = np.bincount(key - lo) > 0 if len(key) else np.zeros(0, dtype=bool)
    periods = (np.flatnonzero(seen) + lo).astype(f"datetime64[{freq}]")
    inv = (np.cumsum(seen) - 1)[key - lo]  # O(n): no sort of the rows
    n = len(periods)
    ns = td.view(np.int64)
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, inv, ns)
    np.maximum.at(last, inv, ns)
    first, last = first.view("datetime64[ns]"), last.view("datetime64[ns]")
    out = pd.DataFrame(
        {
            "first": pd.DatetimeIndex(first).strftime("%Y-%m-%d"),
            "last": pd.DatetimeIndex(last).strftime("%Y-%m-%d"),
            "rows": np.bincount(inv, minlength=n),
        },
        index=pd.Index(periods.astype(str), name="period"),
    )
    for label, m in masks.items():
        out[label] = np.bincount(inv, weights=np.asarray(m, dtype=float), minlength=n).astype(
            np.int64
        )
    return out
