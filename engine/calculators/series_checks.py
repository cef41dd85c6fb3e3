"""Plausibility rules for one price series: one-day spikes that reverse, stale runs, gaps.

The rules every price series of the engine goes through (catalogue files, the user's own files
and frames, and, per contract, the CFE VIX futures files of ``data.cfe``), written once here as
pure functions of arrays; ``data.quality`` applies them to a dataset and words the messages.
Nothing is repaired or interpolated: the functions only find rows.

* :func:`spike_rows`: a value farther than ``threshold`` in log from both of its neighbours
  (the previous and next finite values), in the same direction, while the two neighbours agree
  within half of it: a one-day excursion that reverses, e.g. a x10 or /10 typo (log 10 = 2.3).
  A first value far from its successor is one too (a listing-day outlier). Genuine crashes that
  do not come back (SVXY 2018-02-06, -83 %) are not spikes.
* :func:`stale_runs`: runs of identical consecutive values longer than ``longer_than`` rows
  (a feed that stopped updating repeats its last value: the Wind iVIX download repeats 27.32
  for 91 rows after publication stopped, see ``../shared/data/china_50etf/PROVENANCE.md``).
* :func:`gaps`: consecutive rows with more than ``longer_than`` sessions of a calendar strictly
  between them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def spike_rows(values, threshold: float, groups=None) -> np.ndarray:
    """Boolean mask of the rows whose value is an isolated, reversing outlier.

    ``values``: prices (> 0; NaN and non-positive values are ignored and never flagged);
    ``threshold``: the log distance from both neighbours that makes a spike; ``groups``: an
    optional label per row (e.g. the contract), neighbours are taken within a group only.
    """
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_v = pd.Series(np.where(v > 0, np.log(v), np.nan))
    key = pd.Series(np.zeros(len(v), dtype=np.int64) if groups is None else np.asarray(groups))
    prev = log_v.groupby(key).ffill().groupby(key).shift(1)
    nxt = log_v.groupby(key).bfill().groupby(key).shift(-1)
    up, down = log_v - prev, log_v - nxt
    both = (
        (up.abs() > threshold)
        & (down.abs() > threshold)
        & (np.sign(up) == np.sign(down))
        & ((nxt - prev).abs() < threshold / 2)
    )
    valid = log_v.notna()
    first = valid & prev.isna() & (down.abs() > threshold)
    return (both | first).to_numpy() & valid.to_numpy()


def stale_runs(values, longer_than: int) -> list[tuple[int, int]]:
    """(first row, last row) of every run of identical consecutive finite values that is longer
    than ``longer_than`` rows."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return []
    same = np.isfinite(v[1:]) & (v[1:] == v[:-1])
    starts = np.flatnonzero(np.r_[True, ~same])  # a run starts where a row differs from the last
    ends = np.r_[starts[1:], len(v)] - 1
    keep = ends - starts + 1 > longer_than
    return [(int(a), int(b)) for a, b in zip(starts[keep], ends[keep], strict=True)]


def gaps(dates, sessions, longer_than: int, groups=None) -> list[tuple[int, int, int]]:
    """(row a, row b, missing sessions) for consecutive rows ``a``, ``b`` (of one group) with
    more than ``longer_than`` of ``sessions`` strictly between their dates. ``dates`` must be
    sorted within each group."""
    d = np.asarray(pd.DatetimeIndex(dates).as_unit("ns").to_numpy())
    sess = np.asarray(pd.DatetimeIndex(sessions).as_unit("ns").to_numpy())
    if len(d) < 2:
        return []
    after_a = np.searchsorted(sess, d[:-1], side="right")
    before_b = np.searchsorted(sess, d[1:], side="left")
    missing = before_b - after_a
    same = np.ones(len(d) - 1, dtype=bool)
    if groups is not None:
        g = np.asarray(groups)
        same = g[1:] == g[:-1]
    hit = np.flatnonzero(same & (missing > longer_than))
    return [(int(i), int(i) + 1, int(missing[i])) for i in hit]
