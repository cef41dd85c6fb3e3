"""Causal, prefix-stable rolling kernels for point-in-time signals.

Every function here returns, at index t, a value that depends only on ``x[: t + 1]`` and is
*bit-identical* whether it is computed over the whole history or over a prefix of it. That
property is what lets a decision function be evaluated once over a full history (backtrader's
runonce mode, the vectorised sweep executor) or bar by bar on the data seen so far (next mode)
with identical results, and it is what the look-ahead property test checks.

Windows are evaluated independently with ``sliding_window_view`` (no running sums whose rounding
would depend on where the computation started). Cost is O(n * window), which is negligible for
the window lengths used by the strategies (< a few hundred bars).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# active inside shared_windows(): (kernel, args, input hash) -> out; one per thread (a Dask
# worker runs fast-path chunks on several threads of one process)
_SHARED: ContextVar[dict | None] = ContextVar("shared_windows", default=None)


@contextmanager
def shared_windows() -> Iterator[None]:
    """Within this block a rolling kernel applied to equal inputs with equal arguments is
    computed once (runs of a sweep that differ only in, say, a band share one moving average);
    the results are the same arrays the kernel computes, copied out of the memo."""
    outer = _SHARED.get()
    token = _SHARED.set({} if outer is None else outer)
    try:
        yield
    finally:
        _SHARED.reset(token)


def _memo(kernel: Callable[..., np.ndarray], x: np.ndarray, *args) -> np.ndarray:
    memo = _SHARED.get()
    if memo is None:
        return kernel(x, *args)
    key = (kernel.__name__, args, x.shape, x[:: max(1, len(x) // 64)].tobytes())
    data = x.tobytes()
    for seen, out in memo.get(key, ()):  # a sample keys the memo; the whole input must match
        if seen == data:  # bit for bit (equal values stored differently are computed again)
            return out.copy()
    out = kernel(x, *args)
    memo.setdefault(key, []).append((data, out))
    return out.copy()


def _as_float(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _check_window(window: int) -> None:
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")


def lag(x, periods: int = 1) -> np.ndarray:
    """``x`` shifted forward by ``periods`` bars (NaN for the first ``periods``); never wraps."""
    x = _as_float(x)
    out = np.full_like(x, np.nan)
    if periods < 0:
        raise ValueError("lag periods must be >= 0 (a negative lag would look ahead)")
    if periods == 0:
        return x.copy()
    if periods < len(x):
        out[periods:] = x[:-periods]
    return out


def rolling_mean(x, window: int) -> np.ndarray:
    """Simple moving average over the last ``window`` values; NaN until the window is full or
    when any value in the window is NaN."""
    _check_window(window)
    return _memo(_rolling_mean, _as_float(x), int(window))


def _rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    if len(x) >= window:
        out[window - 1 :] = sliding_window_view(x, window).mean(axis=1)
    return out


def rolling_std(x, window: int, ddof: int = 1) -> np.ndarray:
    """Standard deviation over the last ``window`` values (``ddof=1`` sample, ``0`` population)."""
    _check_window(window)
    if window - ddof < 1:
        raise ValueError(f"window {window} is too short for ddof={ddof}")
    return _memo(_rolling_std, _as_float(x), int(window), int(ddof))


def _rolling_std(x: np.ndarray, window: int, ddof: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    if len(x) >= window:
        out[window - 1 :] = sliding_window_view(x, window).std(axis=1, ddof=ddof)
    return out


def log_returns(x) -> np.ndarray:
    """One-bar log returns ``ln(x_t / x_{t-1})``; NaN at t = 0."""
    x = _as_float(x)
    out = np.full_like(x, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:] = np.log(x[1:] / x[:-1])
    return out


def trailing_return(x, periods: int) -> np.ndarray:
    """Simple return over the last ``periods`` bars, ``x_t / x_{t-periods} - 1``."""
    _check_window(periods)
    x = _as_float(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return x / lag(x, periods) - 1.0


def hold_last(x) -> np.ndarray:
    """Forward-fill NaNs with the last non-NaN value (causal). Leading NaNs stay NaN."""
    x = _as_float(x)
    known = ~np.isnan(x)
    pos = np.flatnonzero(known)
    if not len(pos):
        return np.full_like(x, np.nan)
    if 2 * len(pos) > len(x):  # mostly known: the index of the last known value, accumulated
        idx = np.arange(len(x))
        idx *= known
        np.maximum.accumulate(idx, out=idx)
        out = x[idx]
    else:  # sparse: each known value repeated up to the next one
        out = np.empty_like(x)
        lengths = np.empty_like(pos)
        lengths[:-1] = pos[1:] - pos[:-1]
        lengths[-1] = len(x) - pos[-1]
        out[pos[0] :] = np.repeat(x[pos], lengths)
    out[: pos[0]] = np.nan
    return out


def band_switch(score, upper: float, lower: float) -> np.ndarray:
    """Hysteresis state from a score: +1 when ``score > upper``, -1 when ``score < lower``, and the
    previous state in between (NaN before the first decision or while the score is NaN at the
    start). A NaN score after a decision keeps the previous state: the signal is unknown, so the
    last decision stands."""
    if lower > upper:
        raise ValueError(f"lower band {lower} is above upper band {upper}")
    s = _as_float(score)
    state = np.full_like(s, np.nan)
    state[s > upper] = 1.0
    state[s < lower] = -1.0
    return hold_last(state)
