"""Embedded cointegrated pair: two tradable legs simulated exactly from the pairs-trading model.

Mudchanatongsuk, Primbs & Wong (2008), REFERENCES.md section 5: with B the second leg and
X = ln A - ln B the log spread::

    dB = mu B dt + sigma B dZ,    dX = k (theta - X) dt + eta dW,    dZ dW = rho dt.

The paths come from :func:`engine.calculators.ou.simulate_pair`, which samples the exact
transition law (no Euler error), so a fit of the closes recovers :data:`TRUE_PARAMS` up to
sampling error only.

Bars
----
* **Calendar**: the NYSE sessions between ``start`` and ``end``
  (:func:`data.calendars.nyse_sessions`, the calendar of the embedded volatility
  market in :mod:`data.synthetic`), so the pair merges with that market date for date.
* **Clock**: trading time, one session = ``DT_YEARS`` = 1/252 year (``ou.TRADING_DAYS_PER_YEAR``).
* **Closes**: the model sampled once per session; closes are an exact discretisation of the model
  at ``dt = DT_YEARS``.
* **Opens**: the model sampled half a session (``DT_YEARS / 2``) before each close. The process
  is simulated exactly on a grid of half sessions (open, close, open, close, ...) starting from
  the stationary law of X at the first open; sub-sampling an exact simulation keeps it exact, so
  the closes alone are still the model at ``DT_YEARS``. There is no separate overnight regime:
  the spread and B move continuously in trading time.
* **High/low**: not simulated; ``high = max(open, close)`` and ``low = min(open, close)`` (a
  bracket, narrower than a real range). Nothing in the engine reads them.
* **Volume**: a constant ``VOLUME_SHARES`` per bar (placeholder, not calibrated).

Random numbers come from a child stream of ``numpy.random.SeedSequence(seed)`` with its own
spawn key (``PAIR_SPAWN_KEY``), independent of the volatility market's streams for the same seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from volbacktest.data.calendars import nyse_sessions
from volbacktest.engine.calculators import ou
from volbacktest.engine.errors import ConfigError

# Bar length in years: daily sessions on the 252-day trading clock (REFERENCES.md section 5).
DT_YEARS = 1.0 / ou.TRADING_DAYS_PER_YEAR
# The model's parameters (per year). Rounded from one-year rolling fits of GLD (A) / GDX (B)
# adjusted closes, 2007-2019 (bench/ou_params_plot.py): theta ~ median 1.59, eta ~ median 0.265,
# sigma ~ median 0.38, rho ~ median -0.92. k = 4 lies between the joint (1.3) and marginal (6.1)
# median estimates; the marginal estimate is biased up by about 4 / window_years.
TRUE_PARAMS = ou.OUParams(k=4.0, theta=1.5, eta=0.25, mu=0.05, sigma=0.35, rho=-0.9)
B_START = 25.0  # first open of leg B (A starts near B * e^theta, about 112)
VOLUME_SHARES = 1_000_000.0  # placeholder volume per bar
PAIR_SPAWN_KEY = 0x50414952  # "PAIR": SeedSequence spawn key of this generator's stream
FRAME_KEYS = ("pair_a", "pair_b")
DEFAULT_START = "2005-01-03"  # same default range as data.synthetic
DEFAULT_END = "2019-12-31"


def pair_rng(seed: int) -> np.random.Generator:
    """The generator of the pair for ``seed`` (independent of data.synthetic's streams)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(PAIR_SPAWN_KEY,)))


def simulate_pair_bars(seed: int, n_bars: int) -> ou.SimulatedPair:
    """The half-session path: ``2 * n_bars`` points (open, close) per bar, exact from the model.

    Index ``2i`` is bar i's open and ``2i + 1`` its close; ``dt_years`` of the result is the
    half-session step.
    """
    if int(n_bars) != n_bars or n_bars < 1:
        raise ConfigError(f"n_bars must be a positive integer, got {n_bars!r}")
    return ou.simulate_pair(
        TRUE_PARAMS, 2 * int(n_bars) - 1, DT_YEARS / 2, pair_rng(seed), x0=None, b0=B_START
    )


def _frame(index: pd.DatetimeIndex, path: np.ndarray) -> pd.DataFrame:
    open_, close = path[0::2], path[1::2]
    data = {
        "open": open_,
        "high": np.maximum(open_, close),
        "low": np.minimum(open_, close),
        "close": close,
        "volume": np.full(len(index), VOLUME_SHARES),
    }
    return pd.DataFrame({k: np.asarray(v, dtype=np.float64) for k, v in data.items()}, index=index)


def pair_frames(seed: int = 7, start=DEFAULT_START, end=DEFAULT_END) -> dict[str, pd.DataFrame]:
    """Frames ``pair_a`` and ``pair_b``: float64 open/high/low/close/volume on NYSE sessions.

    Deterministic in ``(seed, start, end)``; the index is a tz-naive ``DatetimeIndex`` named
    ``date``. The true parameters are :data:`TRUE_PARAMS` (X = ln pair_a - ln pair_b, B = pair_b)
    at ``DT_YEARS`` per bar.
    """
    sessions = nyse_sessions(start, end)
    if len(sessions) < 2:
        raise ConfigError(f"the synthetic pair needs at least 2 sessions in {start}..{end}")
    sim = simulate_pair_bars(seed, len(sessions))
    index = pd.DatetimeIndex(sessions, name="date")
    return {"pair_a": _frame(index, sim.price_a), "pair_b": _frame(index, sim.price_b)}
