"""Option-pricing anomaly features and Isolation Forest scores (cross-section and rolling).

Seed article: B. Banushev, "Unsupervised learning for anomaly detection in stock options
pricing" (2019): one scikit-learn ``IsolationForest`` fitted on one day of Goldman Sachs
options (2016-01-05) with ``n_estimators=10, contamination=0.025, random_state=19117,
max_features=6`` on six features, and daily anomaly flags for the 60- and 90-day calls at the
money and +-5/10/20 % as inputs to a trading model (REFERENCES.md section 7).

Features (one row per contract per trade date, see :data:`FEATURES`):

* article: ``strike``, ``delta``, ``gamma``, ``days_to_expiry`` (calendar days),
  ``underlying_minus_strike``, ``mid`` (bid/ask mean; the article rounds the last two to whole
  currency units, ``AnomalyConfig.article_rounding``);
* added: ``iv`` (implied volatility, decimal), ``spread`` (ask - bid), ``log_moneyness``
  (ln(K/S)) and ``iv_residual`` (``iv`` minus the smile its neighbouring strikes predict in
  the same trade date, expiry and type: how far a contract sits off its own smile).

``iv``, ``delta`` and ``gamma`` come from the chain where it has them and are computed with
:mod:`engine.calculators.bs` elsewhere (the 50ETF data has only closes): the implied
volatility of the price (mid, else close/settle/last), then BSM greeks at that volatility.

Scores: ``score`` is Liu, Ting & Zhou's (2008) anomaly score s(x, n) in (0, 1] (larger = more
anomalous; sklearn's ``-score_samples``); ``is_anomaly`` is sklearn's label (score above the
training set's ``contamination`` quantile, or above 0.5 for ``contamination='auto'``).

Modes:

* :func:`score_cross_section`: fit and score each trade date on its own rows (the article);
* :func:`score_rolling`: for each day t, fit on the rows of the previous ``window_days``
  trade dates only and score day t (point-in-time: nothing at or after t enters the model,
  and the features of a row use only that row's own day).

Per-day aggregates (:func:`daily_aggregates`): number and fraction of anomalies, mean score,
and the bucket flags. The bucket "60-day call at ATM+5 %" on day t is the call, among the
scored contracts of day t, whose expiry is nearest to 60 calendar days (ties: the earlier
expiry) and, within that expiry, whose strike is nearest to 1.05 x underlying (ties: the lower
strike); it is left empty (NaN flag) when that expiry is more than ``max_days_gap`` days from
60 or that strike more than ``max_moneyness_gap`` x underlying from the target.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.bs import (
    IVStatus,
    bs_greeks,
    bs_price,
    implied_vol,
    is_call_from_cp,
)
from volbacktest.engine.errors import ConfigError, DataError, DataQualityWarning, require_extra

logger = logging.getLogger(__name__)

# Calendar days per year for tau_years = days_to_expiry / 365 (ACT/365, as bs.DAYS_PER_YEAR).
DAYS_PER_YEAR = 365.0

ARTICLE_FEATURES: tuple[str, ...] = (
    "strike",
    "delta",
    "gamma",
    "days_to_expiry",
    "underlying_minus_strike",
    "mid",
)
EXTRA_FEATURES: tuple[str, ...] = ("iv", "spread", "log_moneyness", "iv_residual")
FEATURES: tuple[str, ...] = ARTICLE_FEATURES + EXTRA_FEATURES
# Features in currency units: divided by the underlying when normalise_by_underlying=True.
_PRICE_LIKE = ("strike", "underlying_minus_strike", "mid", "spread")
# Features rounded to whole currency units by the article (Python round(x, 0), half to even).
_ARTICLE_ROUNDED = ("underlying_minus_strike", "mid")
# Row order of the loaders (data.chains): the forest subsamples rows by position, so the
# article is reproduced only in its file order (expiry, strike, call before put).
_KEY = ["trade_date", "expiry", "strike", "cp"]
# iv_status value for rows whose implied volatility came from the chain itself.
IV_FROM_CHAIN = -1


@dataclass(frozen=True)
class IsolationForestConfig:
    """scikit-learn ``IsolationForest`` parameters (defaults: Liu et al. 2008 / sklearn).

    ``random_state`` is always a fixed integer; ``n_jobs`` stays 1 (results do not depend on it).
    """

    n_estimators: int = 100
    max_samples: int | float | str = "auto"
    contamination: float | str = "auto"
    max_features: int | float = 1.0
    bootstrap: bool = False
    random_state: int = 19117

    def __post_init__(self) -> None:
        if not isinstance(self.n_estimators, int) or self.n_estimators < 1:
            raise ConfigError(f"n_estimators must be an int >= 1, got {self.n_estimators!r}")
        c = self.contamination
        if not (c == "auto" or (isinstance(c, float | int) and 0.0 < c <= 0.5)):
            raise ConfigError(f"contamination must be 'auto' or in (0, 0.5], got {c!r}")
        if not isinstance(self.random_state, int):
            raise ConfigError(
                f"random_state must be a fixed int (results must be reproducible), got "
                f"{self.random_state!r}"
            )
        m = self.max_samples
        if not (
            m == "auto" or (isinstance(m, int) and m >= 2) or (isinstance(m, float) and 0 < m <= 1)
        ):
            raise ConfigError(
                f"max_samples must be 'auto', an int >= 2 or a float in (0, 1], got {m!r}"
            )

    def make(self, n_features: int):
        """A fresh (unfitted) sklearn IsolationForest; needs the ``ml`` extra."""
        ensemble = require_extra("sklearn.ensemble", "ml")
        if isinstance(self.max_features, int) and self.max_features > n_features:
            raise ConfigError(
                f"max_features={self.max_features} exceeds the {n_features} features selected; "
                "lower max_features or add features"
            )
        return ensemble.IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            contamination=self.contamination,
            max_features=self.max_features,
            bootstrap=self.bootstrap,
            random_state=self.random_state,
            n_jobs=1,
        )


@dataclass(frozen=True)
class BucketConfig:
    """The article's daily bucket flags: calls at ``days`` x ATM ``moneyness`` offsets."""

    days: tuple[int, ...] = (60, 90)
    moneyness: tuple[float, ...] = (-0.20, -0.10, -0.05, 0.0, 0.05, 0.10, 0.20)
    cp: tuple[str, ...] = ("C",)
    max_days_gap: float = 15.0  # half the 30-day spacing between the 60- and 90-day targets
    max_moneyness_gap: float = 0.025  # half the 5 % spacing between adjacent strike targets

    def __post_init__(self) -> None:
        if any(c not in ("C", "P") for c in self.cp):
            raise ConfigError(f"BucketConfig.cp must hold 'C'/'P', got {self.cp!r}")

    def names(self) -> list[tuple[str, str, int, float]]:
        """(name, cp, days, moneyness) per bucket, e.g. ('c60_p05', 'C', 60, 0.05)."""
        out = []
        for cp in self.cp:
            for d in self.days:
                for m in self.moneyness:
                    tag = "atm" if m == 0 else f"{'p' if m > 0 else 'm'}{round(abs(m) * 100):02d}"
                    out.append((f"{cp.lower()}{d}_{tag}", cp, d, m))
        return out


@dataclass(frozen=True)
class AnomalyConfig:
    """Everything that decides the features and the scores (validated once, frozen).

    ``price_source``: ``"mid"`` uses (bid + ask) / 2 and needs bid/ask; ``"auto"`` uses the mid
    where bid and ask exist and otherwise the first of close, settle, last that the chain has.
    ``recompute_greeks``: ignore the chain's iv/delta/gamma and compute them from the prices.
    ``min_days_to_expiry``: rows closer to expiry are not scored (no time value left to
    invert on the expiry day). ``rate_cc``/``div_yield_cc``: continuously compounded decimals
    for the BSM inversion (a per-day rate can be passed to the functions instead).
    ``dividend_source``: ``"config"`` uses ``div_yield_cc``; ``"parity"`` implies a yield per
    (trade date, expiry) from put-call parity at the strike where |call - put| is smallest,
    ``q = r - ln(F / S) / tau`` with ``F = K + exp(r tau) (C - P)`` (falls back to
    ``div_yield_cc`` where no strike has both prices). For markets whose forward is not
    ``S exp(r tau)`` (50ETF: dividends, short-sale limits), it keeps in-the-money closes
    above the lower bound and the implied volatilities of calls and puts consistent.
    """

    features: tuple[str, ...] = ARTICLE_FEATURES
    forest: IsolationForestConfig = field(default_factory=IsolationForestConfig)
    article_rounding: bool = False
    normalise_by_underlying: bool = False
    price_source: str = "auto"
    recompute_greeks: bool = False
    min_days_to_expiry: int = 1
    rate_cc: float = 0.0
    div_yield_cc: float = 0.0
    dividend_source: str = "config"
    buckets: BucketConfig = field(default_factory=BucketConfig)

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features:
            raise ConfigError(
                f"unknown or no anomaly features {unknown}; valid features: {list(FEATURES)}"
            )
        if len(set(self.features)) != len(self.features):
            raise ConfigError(f"features repeat a name: {list(self.features)}")
        if self.article_rounding and self.normalise_by_underlying:
            raise ConfigError(
                "article_rounding rounds currency amounts to whole units, which is meaningless "
                "after normalise_by_underlying; choose one"
            )
        if self.price_source not in ("auto", "mid", "close", "settle", "last"):
            raise ConfigError(
                f"price_source={self.price_source!r}; use 'auto', 'mid', 'close', 'settle' or "
                "'last'"
            )
        if self.dividend_source not in ("config", "parity"):
            raise ConfigError(f"dividend_source={self.dividend_source!r}; use 'config' or 'parity'")
        if self.min_days_to_expiry < 0:
            raise ConfigError(f"min_days_to_expiry must be >= 0, got {self.min_days_to_expiry}")


# The seed article's settings (REFERENCES.md section 7).
ARTICLE_CONFIG = AnomalyConfig(
    features=ARTICLE_FEATURES,
    forest=IsolationForestConfig(
        n_estimators=10, contamination=0.025, random_state=19117, max_features=6
    ),
    article_rounding=True,
)


@dataclass(frozen=True)
class FeatureFrame:
    """Features of every row of a chain, sorted by (trade_date, expiry, strike, cp).

    ``frame`` holds the chain keys, ``underlying``, ``rate_cc`` and ``div_yield_cc`` (as used
    in the inversion), ``price`` (the price inverted), every feature of :data:`FEATURES` that
    could be computed (NaN where not; in currency units and unrounded: :meth:`matrix` applies
    ``normalise_by_underlying`` and ``article_rounding``), ``iv_status`` (an
    :class:`~engine.calculators.bs.IVStatus` code, or ``IV_FROM_CHAIN``) and ``usable`` (all
    features of ``config.features`` finite and the row not excluded by ``min_days_to_expiry``).
    ``excluded`` counts the rows left out, by reason.
    """

    frame: pd.DataFrame
    config: AnomalyConfig
    excluded: dict[str, int]

    def matrix(self) -> np.ndarray:
        """The model inputs: selected features, normalised/rounded per the config (all rows)."""
        return _model_inputs(self.frame, self.config)


@dataclass(frozen=True)
class AnomalyResult:
    """Per-contract scores and per-day aggregates.

    ``contracts``: the feature frame plus ``score`` (NaN where not scored), ``is_anomaly``
    (bool) and ``scored`` (bool). ``daily``: indexed by trade_date, see
    :func:`daily_aggregates`, plus ``n_train_rows`` (rows the day's model was fitted on).
    """

    contracts: pd.DataFrame
    daily: pd.DataFrame
    config: AnomalyConfig
    mode: str


# ------------------------------------------------------------------------------------------
# features


def _check_chain(chain: pd.DataFrame) -> None:
    missing = [c for c in ("trade_date", "expiry", "cp", "strike", "underlying") if c not in chain]
    if missing:
        raise DataError(
            f"chain lacks column(s) {missing} of the engine chain schema; load it with "
            "data.chains loaders (they add trade_date, expiry, cp, strike, underlying)"
        )
    if len(chain) == 0:
        raise DataError("chain is empty; nothing to score")


def _column(chain: pd.DataFrame, name: str) -> np.ndarray:
    if name in chain:
        return chain[name].to_numpy(dtype=float, na_value=np.nan)
    return np.full(len(chain), np.nan)


def _price(chain: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(price, spread) per row according to ``source``."""
    bid, ask = _column(chain, "bid"), _column(chain, "ask")
    mid = 0.5 * (bid + ask)
    spread = ask - bid
    if source == "mid":
        if not np.isfinite(mid).any():
            raise ConfigError(
                "price_source='mid' but the chain has no row with both bid and ask; use "
                "price_source='auto' (close/settle/last) for close-only data such as 50ETF"
            )
        return mid, spread
    if source != "auto":
        return _column(chain, source), spread
    price = mid.copy()
    for name in ("close", "settle", "last"):
        fallback = _column(chain, name)
        price = np.where(np.isfinite(price), price, fallback)
    return price, spread


def _iv_residual(frame: pd.DataFrame) -> np.ndarray:
    """iv minus the smile predicted by its neighbours in the same (trade date, expiry, type).

    The two strikes below and the two above give 6 pairs; each pair's straight line in
    ln(strike) predicts the contract's iv (interpolation or extrapolation), and the local smile
    is the median of the available predictions. The contract itself is never used, and a
    single mispriced neighbour moves the median by a quarter of its error at most, so an
    isolated error of d shows as a residual d on the contract and about -d/4 beside it.
    """
    group_all = frame.groupby(["trade_date", "expiry", "cp"], sort=False).ngroup().to_numpy()
    order = np.lexsort((frame["strike"].to_numpy(), group_all))
    group = group_all[order]
    x = np.log(frame["strike"].to_numpy(dtype=float))[order]
    y = frame["iv"].to_numpy(dtype=float)[order]

    def neighbour(values: np.ndarray, k: int) -> np.ndarray:
        """values[i + k] where row i + k is in the same group, else NaN."""
        out = np.full(values.shape, np.nan)
        n = len(values)
        if abs(k) >= n:
            return out
        src = np.arange(max(0, -k), min(n, n - k))
        same = group[src + k] == group[src]
        out[src] = np.where(same, values[src + k], np.nan)
        return out

    offsets = (-2, -1, 1, 2)
    xs = {k: neighbour(x, k) for k in offsets}
    ys = {k: neighbour(y, k) for k in offsets}
    predictions = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for a, k1 in enumerate(offsets):
            for k2 in offsets[a + 1 :]:
                slope = (ys[k2] - ys[k1]) / (xs[k2] - xs[k1])
                predictions.append(ys[k1] + slope * (x - xs[k1]))
    stacked = np.column_stack(predictions)
    available = np.isfinite(stacked).any(axis=1)
    local = np.full(len(y), np.nan)
    local[available] = np.nanmedian(stacked[available], axis=1)
    residual = np.empty(len(y))
    residual[order] = y - local
    return residual


def _rates(rate_cc, trade_date: pd.Series, default: float) -> np.ndarray:
    if rate_cc is None:
        return np.full(len(trade_date), default)
    if isinstance(rate_cc, pd.Series):
        mapped = trade_date.map(rate_cc)
        if mapped.isna().any():
            day = trade_date[mapped.isna()].iloc[0]
            raise DataError(
                f"rate_cc series has no value for trade date {day:%Y-%m-%d} "
                f"({int(mapped.isna().sum())} rows); forward-fill the rate series to every "
                "trade date first"
            )
        return mapped.to_numpy(dtype=float)
    return np.full(len(trade_date), float(rate_cc))


def _parity_div_yield(frame, price, rate, tau, fallback: float) -> np.ndarray:
    """Per-row dividend yield implied by put-call parity in each (trade date, expiry)."""
    pairs = pd.DataFrame(
        {
            "trade_date": frame["trade_date"].to_numpy(),
            "expiry": frame["expiry"].to_numpy(),
            "strike": frame["strike"].to_numpy(dtype=float),
            "cp": frame["cp"].to_numpy(),
            "price": price,
        }
    )
    wide = pairs.pivot_table(
        index=["trade_date", "expiry", "strike"], columns="cp", values="price", aggfunc="first"
    )
    if not {"C", "P"} <= set(wide.columns):
        return np.full(len(frame), fallback)
    wide = wide.dropna(subset=["C", "P"])
    gap = (wide["C"] - wide["P"]).abs()
    at = gap.groupby(level=["trade_date", "expiry"]).idxmin()
    best = wide.loc[list(at.to_numpy())].reset_index()
    rows = pairs.assign(rate=rate, tau=tau, spot=frame["underlying"].to_numpy(dtype=float))
    terms = rows.groupby(["trade_date", "expiry"])[["rate", "tau", "spot"]].first()
    best = best.join(terms, on=["trade_date", "expiry"])
    with np.errstate(invalid="ignore", divide="ignore"):
        forward = best["strike"] + np.exp(best["rate"] * best["tau"]) * (best["C"] - best["P"])
        implied = best["rate"] - np.log(forward / best["spot"]) / best["tau"]
    best = best.assign(q=implied.where(np.isfinite(implied)))
    q = pairs.join(best.set_index(["trade_date", "expiry"])["q"], on=["trade_date", "expiry"])
    return q["q"].fillna(fallback).to_numpy(dtype=float)


def _implied_and_greeks(frame, price, config, rate):
    """Fill iv/delta/gamma from the chain where present, else compute them with bs.py."""
    chain_iv = frame["iv"].to_numpy(dtype=float)
    days = frame["days_to_expiry"].to_numpy(dtype=float)
    tau = days / DAYS_PER_YEAR
    if config.dividend_source == "parity":
        div = _parity_div_yield(frame, price, rate, tau, config.div_yield_cc)
    else:
        div = np.full(len(frame), config.div_yield_cc)
    is_call = is_call_from_cp(frame["cp"].to_numpy())
    spot = frame["underlying"].to_numpy(dtype=float)
    strike = frame["strike"].to_numpy(dtype=float)
    need = ~np.isfinite(chain_iv) | config.recompute_greeks
    iv = np.where(need, np.nan, chain_iv)
    status = np.where(need, IVStatus.INVALID_INPUT, IV_FROM_CHAIN).astype(np.int8)
    solve = need & (tau > 0) & (spot > 0)

    def terms(mask: np.ndarray) -> tuple[tuple, dict]:
        args = (spot[mask], strike[mask], tau[mask])
        return args, {"rate_cc": rate[mask], "div_yield_cc": div[mask], "is_call": is_call[mask]}

    if solve.any():
        args, kwargs = terms(solve)
        result = implied_vol(price[solve], *args, **kwargs)
        iv[solve] = result.iv
        status[solve] = result.status
    delta = frame["delta"].to_numpy(dtype=float)
    gamma = frame["gamma"].to_numpy(dtype=float)
    need_greeks = ~(np.isfinite(delta) & np.isfinite(gamma)) | config.recompute_greeks
    fill = need_greeks & np.isfinite(iv) & (iv > 0) & (tau > 0)
    if fill.any():
        args, kwargs = terms(fill)
        g = bs_greeks(*args, iv[fill], **kwargs)
        delta = delta.copy()
        gamma = gamma.copy()
        delta[fill] = g.delta
        gamma[fill] = g.gamma
    delta = np.where(need_greeks & ~fill, np.nan, delta)
    gamma = np.where(need_greeks & ~fill, np.nan, gamma)
    return iv, status, delta, gamma, div


def option_features(
    chain: pd.DataFrame,
    config: AnomalyConfig = ARTICLE_CONFIG,
    *,
    rate_cc: float | pd.Series | None = None,
) -> FeatureFrame:
    """Compute every feature of :data:`FEATURES` for every row of ``chain`` (vectorised).

    ``rate_cc``: a float, or a Series of decimals indexed by trade date, overriding
    ``config.rate_cc`` for the implied-volatility inversion.
    """
    _check_chain(chain)
    keep = [
        c
        for c in chain.columns
        if c
        in (
            *_KEY,
            "underlying",
            "contract",
            "bid",
            "ask",
            "close",
            "settle",
            "last",
            "iv",
            "delta",
            "gamma",
        )
    ]
    frame = chain[keep].copy()
    for c in ("iv", "delta", "gamma"):
        if c not in frame:
            frame[c] = np.nan
    frame = frame.sort_values(_KEY, kind="stable").reset_index(drop=True)
    price, spread = _price(frame, config.price_source)
    days = (frame["expiry"] - frame["trade_date"]).dt.days.to_numpy(dtype=float)
    frame["days_to_expiry"] = days
    rate = _rates(rate_cc, frame["trade_date"], config.rate_cc)
    iv, status, delta, gamma, div = _implied_and_greeks(frame, price, config, rate)
    spot = frame["underlying"].to_numpy(dtype=float)
    strike = frame["strike"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_moneyness = np.log(strike / spot)
    frame = frame.assign(
        price=price,
        mid=price,
        spread=spread,
        iv=iv,
        iv_status=status,
        rate_cc=rate,
        div_yield_cc=div,
        delta=delta,
        gamma=gamma,
        underlying_minus_strike=spot - strike,
        log_moneyness=log_moneyness,
    )
    frame["iv_residual"] = _iv_residual(frame)
    return _mark_usable(frame, config)


def _model_inputs(frame: pd.DataFrame, config: AnomalyConfig) -> np.ndarray:
    """Selected features as floats, divided by the underlying and/or rounded per the config."""
    columns = []
    spot = frame["underlying"].to_numpy(dtype=float)
    for name in config.features:
        values = frame[name].to_numpy(dtype=float)
        if config.normalise_by_underlying and name in _PRICE_LIKE:
            values = values / spot
        if config.article_rounding and name in _ARTICLE_ROUNDED:
            values = np.round(values)  # Python's round(x, 0) in the article: half to even
        columns.append(values)
    return np.column_stack(columns)


def _mark_usable(frame: pd.DataFrame, config: AnomalyConfig) -> FeatureFrame:
    near_expiry = frame["days_to_expiry"].to_numpy() < config.min_days_to_expiry
    values = _model_inputs(frame, config)
    missing = ~np.isfinite(values).all(axis=1) & ~near_expiry
    usable = ~near_expiry & ~missing
    excluded: dict[str, int] = {}
    if near_expiry.any():
        excluded[f"days_to_expiry < {config.min_days_to_expiry}"] = int(near_expiry.sum())
    if missing.any():
        for name in config.features:
            col_missing = missing & ~np.isfinite(frame[name].to_numpy(dtype=float))
            if col_missing.any():
                excluded[f"no {name}"] = int(col_missing.sum())
        status = frame["iv_status"].to_numpy()
        for code in IVStatus:
            n = int((missing & (status == code)).sum())
            if code != IVStatus.OK and n:
                excluded[f"iv {code.name}"] = n
    if missing.all() and len(frame):
        raise ConfigError(
            f"no row has all features {list(config.features)} (missing: {excluded}); remove the "
            "features this chain cannot provide (e.g. 'spread' needs bid/ask)"
        )
    if missing.any():
        warnings.warn(
            DataQualityWarning(
                f"anomaly features: {int(missing.sum())} of {len(frame)} rows lack a feature and "
                f"are not scored ({excluded}); their score is NaN and is_anomaly False"
            ),
            stacklevel=3,
        )
    frame = frame.assign(usable=usable)
    return FeatureFrame(frame=frame, config=config, excluded=excluded)


def _as_features(data, config: AnomalyConfig, rate_cc) -> FeatureFrame:
    if isinstance(data, FeatureFrame):
        if data.config != config:
            raise ConfigError(
                "the FeatureFrame was built with another AnomalyConfig; rebuild it with "
                "option_features(chain, config) or pass the chain itself"
            )
        return data
    return option_features(data, config, rate_cc=rate_cc)


# ------------------------------------------------------------------------------------------
# scoring


def _day_bounds(trade_date: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique days and the start offsets of each day's rows (frame sorted by day)."""
    codes, days = pd.factorize(trade_date, sort=True)
    starts = np.searchsorted(codes, np.arange(len(days) + 1))
    return np.asarray(days), starts


def _fit(config: AnomalyConfig, x_train: np.ndarray):
    model = config.forest.make(x_train.shape[1])
    return model.fit(x_train)


def _score(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raw = model.score_samples(x)
    return -raw, raw < model.offset_


def _assemble(features: FeatureFrame, score, label, n_train, days, mode) -> AnomalyResult:
    frame = features.frame.assign(score=score, is_anomaly=label, scored=np.isfinite(score))
    daily = daily_aggregates(frame, features.config.buckets)
    n_train_series = pd.Series(n_train, index=pd.DatetimeIndex(days, name="trade_date"))
    daily = daily.reindex(n_train_series.index).assign(n_train_rows=n_train_series)
    return AnomalyResult(contracts=frame, daily=daily, config=features.config, mode=mode)


def _prepare(data, config: AnomalyConfig, rate_cc):
    """Features, model inputs, usable mask, day bounds and empty score/label/n_train arrays."""
    features = _as_features(data, config, rate_cc)
    frame = features.frame
    days, starts = _day_bounds(frame["trade_date"])
    return (
        features,
        features.matrix(),
        frame["usable"].to_numpy(),
        days,
        starts,
        np.full(len(frame), np.nan),
        np.zeros(len(frame), dtype=bool),
        np.zeros(len(days), dtype=int),
    )


def score_cross_section(
    data: pd.DataFrame | FeatureFrame,
    config: AnomalyConfig = ARTICLE_CONFIG,
    *,
    rate_cc: float | pd.Series | None = None,
) -> AnomalyResult:
    """Fit and score each trade date on its own usable rows (the article's mode).

    A model is fitted per day (a forest cannot be vectorised across days). Days with fewer
    than 2 usable rows are not scored.
    """
    features, x, usable, days, starts, score, label, n_train = _prepare(data, config, rate_cc)
    for i in range(len(days)):
        rows = np.arange(starts[i], starts[i + 1])[usable[starts[i] : starts[i + 1]]]
        if rows.size < 2:
            continue
        model = _fit(config, x[rows])
        score[rows], label[rows] = _score(model, x[rows])
        n_train[i] = rows.size
    return _assemble(features, score, label, n_train, days, "cross_section")


def score_rolling(
    data: pd.DataFrame | FeatureFrame,
    config: AnomalyConfig = ARTICLE_CONFIG,
    *,
    window_days: int = 20,
    min_train_rows: int = 256,
    refit_every: int = 1,
    rate_cc: float | pd.Series | None = None,
) -> AnomalyResult:
    """Point-in-time scores: day t is scored by a model fitted on earlier days only.

    The model used on day t is fitted on the usable rows of the ``window_days`` trade dates
    before the fit day; with ``refit_every = k`` a model is refitted every k-th trade date and
    used until the next refit (the fit day is never after the scored day, so no look-ahead).
    Days whose window has fewer than ``min_train_rows`` usable rows (the warm-up) are not
    scored: their score is NaN, ``scored`` False and ``n_train_rows`` 0 in ``daily``.
    """
    if window_days < 1 or refit_every < 1 or min_train_rows < 2:
        raise ConfigError(
            f"window_days ({window_days}) and refit_every ({refit_every}) must be >= 1 and "
            f"min_train_rows ({min_train_rows}) >= 2"
        )
    features, x, usable, days, starts, score, label, n_train = _prepare(data, config, rate_cc)
    model, model_rows, since_fit = None, 0, refit_every
    for i in range(1, len(days)):
        if model is None or since_fit >= refit_every:
            lo, hi = starts[max(0, i - window_days)], starts[i]
            train = np.arange(lo, hi)[usable[lo:hi]]
            model = _fit(config, x[train]) if train.size >= min_train_rows else None
            model_rows, since_fit = train.size, 0
        since_fit += 1
        if model is None:
            continue
        rows = np.arange(starts[i], starts[i + 1])[usable[starts[i] : starts[i + 1]]]
        if rows.size:
            score[rows], label[rows] = _score(model, x[rows])
        n_train[i] = model_rows
    logger.debug(
        "rolling anomaly scores: %d of %d trade dates scored (window %d, refit every %d)",
        int((n_train > 0).sum()),
        len(days),
        window_days,
        refit_every,
    )
    return _assemble(features, score, label, n_train, days, "rolling")


# ------------------------------------------------------------------------------------------
# per-day aggregates and buckets


def select_bucket_contracts(
    contracts: pd.DataFrame,
    buckets: BucketConfig = BucketConfig(),  # noqa: B008 - frozen
) -> pd.DataFrame:
    """The contract chosen for each (trade_date, bucket) among scored rows (see module doc).

    Returns columns trade_date, bucket, expiry, strike, days_to_expiry, days_gap,
    moneyness_gap, score, is_anomaly (one row per day and bucket that has a contract within
    the gaps).
    """
    base = contracts.loc[contracts["scored"].to_numpy(dtype=bool)]
    out = []
    for name, cp, target_days, m in buckets.names():
        side = base.loc[base["cp"] == cp]
        if side.empty:
            continue
        days_gap = (side["days_to_expiry"] - target_days).abs()
        # earliest expiry among the nearest (frame is sorted by trade_date, expiry, cp, strike)
        best_gap = days_gap.groupby(side["trade_date"]).transform("min")
        same_gap = side.loc[days_gap == best_gap]
        chosen_expiry = same_gap.groupby("trade_date")["expiry"].transform("min")
        term = same_gap.loc[same_gap["expiry"] == chosen_expiry]
        spot = term["underlying"]
        k_gap = (term["strike"] - (1.0 + m) * spot).abs() / spot
        idx = k_gap.groupby(term["trade_date"]).idxmin()  # first = lower strike on ties
        pick = term.loc[idx.to_numpy()]
        pick = pick.assign(
            bucket=name,
            days_gap=(pick["days_to_expiry"] - target_days).abs(),
            moneyness_gap=k_gap.loc[idx.to_numpy()].to_numpy(),
        )
        ok = (pick["days_gap"] <= buckets.max_days_gap) & (
            pick["moneyness_gap"] <= buckets.max_moneyness_gap
        )
        out.append(pick.loc[ok])
    columns = [
        "trade_date",
        "bucket",
        "expiry",
        "strike",
        "days_to_expiry",
        "days_gap",
        "moneyness_gap",
        "score",
        "is_anomaly",
    ]
    if not out:
        return pd.DataFrame(columns=columns)
    return pd.concat(out, ignore_index=True)[columns]


def daily_aggregates(
    contracts: pd.DataFrame,
    buckets: BucketConfig = BucketConfig(),  # noqa: B008 - frozen
) -> pd.DataFrame:
    """Per trade date: n_contracts, n_scored, n_anomalies, anomaly_fraction (of scored),
    mean_score, max_score, and per bucket ``anomaly_<bucket>`` (1.0/0.0, NaN when the bucket
    is empty) and ``score_<bucket>``.
    """
    frame = contracts
    scored = frame["scored"].to_numpy(dtype=bool)
    g = frame.assign(
        _scored=scored.astype(int),
        _anom=(frame["is_anomaly"].to_numpy(dtype=bool) & scored).astype(int),
    ).groupby("trade_date")
    daily = pd.DataFrame(
        {
            "n_contracts": g.size(),
            "n_scored": g["_scored"].sum(),
            "n_anomalies": g["_anom"].sum(),
            "mean_score": g["score"].mean(),
            "max_score": g["score"].max(),
        }
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = daily["n_anomalies"] / daily["n_scored"].where(daily["n_scored"] > 0)
    daily = daily.assign(anomaly_fraction=fraction)
    picked = select_bucket_contracts(frame, buckets)
    names = [b[0] for b in buckets.names()]
    picked = picked.assign(is_anomaly=picked["is_anomaly"].astype(float))
    flags = picked.pivot_table(
        index="trade_date", columns="bucket", values="is_anomaly", aggfunc="first"
    )
    scores = picked.pivot_table(
        index="trade_date", columns="bucket", values="score", aggfunc="first"
    )
    flags = flags.reindex(index=daily.index, columns=names).astype(float)
    scores = scores.reindex(index=daily.index, columns=names).astype(float)
    flags.columns = [f"anomaly_{n}" for n in names]
    scores.columns = [f"score_{n}" for n in names]
    return pd.concat([daily, flags, scores], axis=1).rename_axis("trade_date")


# ------------------------------------------------------------------------------------------
# synthetic chain for tests and examples


# K / S from 0.80 to 1.20 in steps of 0.025 (17 strikes per expiry and side).
_TEST_MONEYNESS = tuple(np.round(np.linspace(0.80, 1.20, 17), 3))


def make_test_chain(
    *,
    trade_dates: pd.DatetimeIndex | None = None,
    spot: float = 100.0,
    expiry_days: tuple[int, ...] = (14, 30, 45, 60, 90, 120, 180, 270, 365),
    moneyness: tuple[float, ...] | np.ndarray = _TEST_MONEYNESS,
    atm_vol: float = 0.20,
    skew: float = -0.05,
    curvature: float = 0.02,
    term_slope: float = 0.02,
    daily_vol: float = 0.01,
    rate_cc: float = 0.02,
    div_yield_cc: float = 0.0,
    spread_frac: float = 0.02,
    min_spread: float = 0.0,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """A clean chain in the engine schema priced by BSM on a smile, for tests and examples.

    Implied volatility ``atm_vol * (1 + term_slope * ln(T / 0.25)) + skew * k + curvature * k^2``
    with ``k = ln(K / F) / sqrt(T)``; bid/ask = BSM price -+ half of
    ``max(min_spread, spread_frac * price)`` (bid floored at 0). The underlying follows a
    driftless lognormal walk with ``daily_vol`` over ``trade_dates`` (business days from
    2020-01-02; 1 day by default) drawn from ``rng`` (seed 0 by default). Strikes are
    ``moneyness x`` the first day's spot (fixed listed strikes, as exchanges do). ``iv``,
    ``delta`` and ``gamma`` are NaN: callers compute them from the prices.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    if trade_dates is None:
        trade_dates = pd.DatetimeIndex(["2020-01-02"])
    n_days = len(trade_dates)
    steps = rng.normal(-0.5 * daily_vol**2, daily_vol, n_days)
    spots = spot * np.exp(np.concatenate([[0.0], np.cumsum(steps[1:])]))
    strikes = np.round(spot * np.asarray(moneyness, dtype=float), 4)
    # one expiry set listed on the first day; later days see the same expiries, closer.
    expiries = trade_dates[0] + pd.to_timedelta(np.asarray(expiry_days), unit="D")
    d, e, k, c = np.meshgrid(
        np.arange(n_days), np.arange(len(expiries)), strikes, [0, 1], indexing="ij"
    )
    d, e, k, c = d.ravel(), e.ravel(), k.ravel(), c.ravel()
    trade = trade_dates[d]
    expiry = expiries[e]
    days = (expiry - trade).days.to_numpy()
    live = days > 0
    trade, expiry, k, c, days, s = (
        trade[live],
        expiry[live],
        k[live],
        c[live],
        days[live],
        spots[d[live]],
    )
    tau = days / DAYS_PER_YEAR
    forward = s * np.exp((rate_cc - div_yield_cc) * tau)
    kk = np.log(k / forward) / np.sqrt(tau)
    vol = atm_vol * (1.0 + term_slope * np.log(tau / 0.25)) + skew * kk + curvature * kk**2
    vol = np.maximum(vol, 0.05)
    is_call = c == 0
    price = bs_price(s, k, tau, vol, rate_cc=rate_cc, div_yield_cc=div_yield_cc, is_call=is_call)
    half = 0.5 * np.maximum(min_spread, spread_frac * price)
    chain = pd.DataFrame(
        {
            "trade_date": trade.astype("datetime64[ns]"),
            "expiry": expiry.astype("datetime64[ns]"),
            "cp": np.where(is_call, "C", "P"),
            "strike": k,
            "underlying": s,
            "bid": np.maximum(price - half, 0.0),
            "ask": price + half,
            "iv": np.nan,
            "delta": np.nan,
            "gamma": np.nan,
            "true_vol": vol,
        }
    )
    return chain.sort_values(_KEY, kind="stable").reset_index(drop=True)
