"""50ETF option chains as engine inputs: the chain dataset, the iVIX / RND / anomaly series and
the ``rnd_tail`` and ``anomaly`` strategy filters.

Importing this module registers (``inputs.chainseries`` and ``inputs.filters`` import it by
name through their ``REGISTERING_MODULES``):

* chain dataset ``etf50_options`` (underlying dataset ``etf50``, the unadjusted 510050 closes):
  shared = the JoinQuant 50ETF closes (``data.chains.load_50etf_options``) with the 510050
  closes and the contract list, under :data:`ETF50_POLICY`, and SHIBOR
  (``data.rates.load_shibor``) as the rate curve; embedded = ``data.synthetic_chains``
  (50ETF-like Heston chains, constant rate);
* series (inputs named ``"<column>@etf50_options"``):

  - ``ivix``: ``ivix30``, ``ivix60`` from ``compute_vix(chain, "sse_ivix", rates)``
    (``lookback_days = 1``: the stale-chain check compares each date with the previous one);
  - ``rnd``: 30-day risk-neutral moments from ``rnd_horizon_moments`` (near/next expiries
    interpolated in time): ``rnd_mean`` (mean of S_T = the 30-day forward, CNY), ``rnd_std``
    (CNY), ``rnd_vol`` (std / F / sqrt(T), annualised), ``rnd_skew``, ``rnd_kurt`` (excess),
    ``rnd_left_tail`` = P[S_T < 0.9 S] and ``rnd_left_tail_80`` / ``rnd_left_tail_95`` for the
    fractions 0.8 and 0.95 (``lookback_days = 0``);
  - ``anomaly``: daily Isolation Forest aggregates in rolling mode (:data:`ANOMALY`):
    ``anomaly_count`` (flagged contracts), ``anomaly_fraction`` (of scored contracts),
    ``anomaly_score`` (mean score), ``lookback_days = window_days + 4``.

* filters ``rnd_tail`` (flag when ``rnd_left_tail*`` exceeds ``threshold``) and ``anomaly``
  (flag when ``anomaly_fraction`` exceeds ``max_fraction``), each with ``action:
  block_entries | flatten`` and a ``chain`` key.

**Rates.** The shared SHIBOR file ends 2018-07-13 while the options run to 2024-05-21. Later
dates use the last SHIBOR curve carried forward; the loader logs this once (WARNING) with the
dates, and the calculators are then called with the carried curve. (The rate moves the iVIX by
about 0.05 points, see bench/bench_ivix.py.) The embedded chains use their model's constant rate.

**Anomaly refits.** A model is fitted on the first trade date of each ISO week, on the usable
contracts of the ``window_days`` trade dates before it, and scores every date of that week: a
date-anchored schedule, so a value depends only on its own week and the window before it
(``lookback_days = window_days + 4``) and is identical whether the history is computed at once
or bar by bar. A date is scored only when its refit date has ``window_days`` earlier dates in
the chain (the warm-up is NaN). Fitted models are cached by their training data.

**Per-date cache.** Every series value depends only on the chain rows of its own date and the
``lookback_days`` dates before it, so values are cached per (series, source, fingerprint of
those rows): the market builder's whole-history pass, backtrader's runonce pass over the run's
calendar and next-mode calls reuse them instead of refitting RNDs and forests. The caches are
registered with ``engine.caches.CACHES`` (:data:`PER_DATE_CACHE` values, :data:`MODEL_CACHE`
forests); ``with CACHES.disabled(PER_DATE_CACHE): ...`` recomputes (tests of the modes do).
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from volbacktest.data.catalogue import DatasetSpec, resolve_files
from volbacktest.data.chains import ChainPolicy, load_50etf_options
from volbacktest.data.rates import load_shibor
from volbacktest.data.synthetic_chains import EtfChainParams, etf50_chains
from volbacktest.engine.caches import CACHES
from volbacktest.engine.calculators.anomaly import (
    ARTICLE_FEATURES,
    AnomalyConfig,
    IsolationForestConfig,
    option_features,
)
from volbacktest.engine.calculators.rates import shibor_curve_rate
from volbacktest.engine.calculators.rnd import rnd_horizon_moments
from volbacktest.engine.calculators.vix import compute_vix
from volbacktest.engine.errors import DataQualityWarning, StaleDataWarning
from volbacktest.engine.inputs import chainseries
from volbacktest.engine.inputs.chainseries import ChainContext, ChainDatasetSpec, ChainSeriesSpec
from volbacktest.engine.inputs.filters import (
    FilterParams,
    FilterSpec,
    ThresholdFilter,
    register_filter,
)

logger = logging.getLogger(__name__)

CHAIN = "etf50_options"
UNDERLYING = "etf50"
# shared files, relative to a data root (see china_50etf/PROVENANCE.md)
ETF50_FILES = {
    "options": "china_50etf/50etf_options_daily_joinquant__TanTzs.csv",
    "underlying": "china_50etf/510050_daily_unadjusted__zsh-a.csv",
    "contracts": "china_50etf/50ETF_options_contract_list__zhenfelix.csv",
    "shibor": "china_50etf/shibor__Alexdachen.csv",
}
IVIX_PRESET = "sse_ivix"
# RND: 30 calendar days (the iVIX horizon), tails below these fractions of spot
RND_TARGET_DAYS = 30.0
RND_FRACTIONS = {0.8: "rnd_left_tail_80", 0.9: "rnd_left_tail", 0.95: "rnd_left_tail_95"}
RND_MIN_DAYS = 7  # the iVIX roll: expiries within a week are not fitted
# SHIBOR: the curve of every date is as of that date; beyond the file it is carried forward
SHIBOR_NOTE_DAYS = 7
_MEMO_MAX_ROWS = 200_000  # per-date cache entries kept (a whole 50ETF history is ~7,000)
_MODEL_MEMO_MAX = 64  # fitted forests kept
PER_DATE_CACHE = "inputs.options_series.per_date"  # cache names in engine.caches.CACHES
MODEL_CACHE = "inputs.options_series.forests"


@dataclass(frozen=True)
class AnomalySettings:
    """Rolling anomaly scoring of the ``anomaly`` series (see the module docstring).

    Features: the article's six (strike, delta, gamma, days to expiry, underlying - strike,
    price) divided by the underlying where in currency, plus implied volatility and the
    contract's distance from its own smile (``iv_residual``); Isolation Forest with 25 trees,
    contamination 2.5 % (the article's) and a fixed seed.
    """

    window_days: int = 20
    min_train_rows: int = 200
    n_estimators: int = 25
    contamination: float = 0.025
    random_state: int = 19117

    def config(self):

        forest = IsolationForestConfig(
            n_estimators=self.n_estimators,
            contamination=self.contamination,
            random_state=self.random_state,
        )
        return AnomalyConfig(
            features=(*ARTICLE_FEATURES, "iv", "iv_residual"),
            forest=forest,
            normalise_by_underlying=True,
        )


ANOMALY = AnomalySettings()
# a refit date is at most 4 sessions before the dates of its ISO week
ANOMALY_LOOKBACK = ANOMALY.window_days + 4


# --------------------------------------------------------------------------- loaders


def _shared_paths(roots) -> dict[str, Path]:

    spec = DatasetSpec(
        name=CHAIN,
        kind="signal",
        files=tuple(ETF50_FILES.values()),
        loader=_unused_loader,
        description="SSE 50ETF options (JoinQuant closes) with 510050, contract list, SHIBOR",
        start="2015-02-09",
        end="2024-05-21",
    )
    return dict(zip(ETF50_FILES, resolve_files(spec, roots), strict=True))


def _unused_loader(paths):  # pragma: no cover - the chain has its own loader
    raise NotImplementedError


def _policy(bad_quotes: str = "stop"):

    # crossed / negative / expired rows as data.bad_quotes says (stop by default), drop
    # unpriced rows and both rows of a duplicate key (a standard and an adjusted contract the
    # source cannot tell apart), and drop adjusted "A" contracts of a (date, expiry) with at
    # least three standard strikes (the sse_ivix rule)
    return ChainPolicy(adjusted="standard_grid", bad_quotes=bad_quotes)


def load_etf50_shared(roots, bad_quotes: str = "stop") -> tuple[pd.DataFrame, ChainContext]:
    """The shared 50ETF chain (policy :func:`_policy`) and a context with the SHIBOR curve."""

    paths = _shared_paths(roots)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataQualityWarning)
        chain = load_50etf_options(
            paths["options"], paths["underlying"], paths["contracts"], policy=_policy(bad_quotes)
        )
    for w in caught:  # the loader's policy report (rows dropped/merged), once per process
        if isinstance(w.message, DataQualityWarning):
            logger.warning("%s", w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    shibor = load_shibor(paths["shibor"])
    last_rate = shibor.index[-1]
    beyond = chain["trade_date"] > last_rate + pd.Timedelta(days=SHIBOR_NOTE_DAYS)
    if beyond.any():
        logger.warning(
            "SHIBOR (%s) ends %s; %d option trade dates after it (to %s) use its last curve "
            "carried forward",
            paths["shibor"].name,
            last_rate.date(),
            chain.loc[beyond, "trade_date"].nunique(),
            chain["trade_date"].max().date(),
        )
    key = ("shared", bad_quotes) + tuple((str(p), p.stat().st_mtime_ns) for p in paths.values())
    notes = tuple(n for n in (chain.attrs.get("policy_note"),) if n)
    extras = {"cache_key": key, "notes": notes}
    context = ChainContext(source="shared", rates=shibor, extras=extras)
    return chain, context


def load_etf50_synthetic(seed: int, start, end) -> tuple[pd.DataFrame, ChainContext]:
    """The embedded 50ETF-like chains for ``seed`` over ``start..end`` (constant rate)."""

    params = EtfChainParams()
    chain = etf50_chains(seed, start, end, params)
    key = ("synthetic", int(seed), str(start), str(end), params)
    context = ChainContext(source="synthetic", rates=params.rate_cc, extras={"cache_key": key})
    return chain, context


# --------------------------------------------------------------------------- rates adapters


def _carried_curve(rates: pd.DataFrame, dates, days) -> np.ndarray:

    with warnings.catch_warnings():
        # the carry-forward beyond the file is announced once by the loader
        warnings.simplefilter("ignore", StaleDataWarning)
        return shibor_curve_rate(rates, dates, days, max_stale_days=None)


def _vix_rates(context: ChainContext):
    if isinstance(context.rates, pd.DataFrame):
        curve = context.rates
        return lambda dates, expiries, days: _carried_curve(curve, dates, days)
    return float(context.rates)


def _rnd_rates(context: ChainContext):
    if isinstance(context.rates, pd.DataFrame):
        curve = context.rates
        return lambda dates, days: _carried_curve(curve, dates, days)
    return float(context.rates)


def _anomaly_rates(context: ChainContext, chain: pd.DataFrame):
    """One rate per trade date (the anomaly features take a rate per date): the curve at 30
    days."""
    if not isinstance(context.rates, pd.DataFrame):
        return float(context.rates)
    dates = pd.DatetimeIndex(np.unique(chain["trade_date"].to_numpy()))
    return pd.Series(_carried_curve(context.rates, dates, np.full(len(dates), 30.0)), dates)


# --------------------------------------------------------------------------- per-date cache

_MEMO: OrderedDict[tuple, tuple] = OrderedDict()
_MODELS: OrderedDict[tuple, object] = OrderedDict()
CACHES.register(PER_DATE_CACHE, _MEMO.clear)
CACHES.register(MODEL_CACHE, _MODELS.clear)
_HASH_COLUMNS = (
    "trade_date", "expiry", "cp", "strike", "underlying", "bid", "ask", "close", "last",
    "settle", "prev_settle", "volume", "adjusted",
)  # fmt: skip


def _date_fingerprints(chain: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Distinct trade dates and an order-free hash of each date's rows."""
    cols = [c for c in _HASH_COLUMNS if c in chain.columns]
    rows = pd.util.hash_pandas_object(chain[cols], index=False).to_numpy()
    td = chain["trade_date"].to_numpy(dtype="datetime64[ns]")
    order = np.argsort(td, kind="stable")
    td, rows = td[order], rows[order]
    if len(td) == 0:
        return pd.DatetimeIndex([], name="trade_date"), np.empty(0, np.uint64)
    start = np.flatnonzero(np.concatenate([[True], td[1:] != td[:-1]]))
    return pd.DatetimeIndex(td[start], name="trade_date"), np.add.reduceat(rows, start)


def _per_date_cached(
    name: str, columns: tuple[str, ...], lookback: int, fn: Callable
) -> Callable[[pd.DataFrame, ChainContext], pd.DataFrame]:
    """``fn`` with its per-date values cached (see the module docstring)."""

    def compute(chain: pd.DataFrame, context: ChainContext) -> pd.DataFrame:
        key = context.extras.get("cache_key") if CACHES.enabled(PER_DATE_CACHE) else None
        if key is None:
            return fn(chain, context)[list(columns)]
        dates, fp = _date_fingerprints(chain)
        windows = [
            (name, key, tuple(fp[max(0, j - lookback) : j + 1].tolist())) for j in range(len(fp))
        ]
        cached = [_MEMO.get(w) for w in windows]
        if all(c is not None for c in cached):
            for w in windows:
                _MEMO.move_to_end(w)
            values = np.array(cached, dtype=float).reshape(len(dates), len(columns))
            return pd.DataFrame(values, index=dates, columns=list(columns))
        out = fn(chain, context).reindex(dates)
        values = out[list(columns)].to_numpy(dtype=float)
        for w, row in zip(windows, values, strict=True):
            _MEMO[w] = tuple(row.tolist())
        while len(_MEMO) > _MEMO_MAX_ROWS:
            _MEMO.popitem(last=False)
        return out[list(columns)]

    return compute


# --------------------------------------------------------------------------- series


def _dates_index(chain: pd.DataFrame) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.unique(chain["trade_date"].to_numpy()), name="trade_date")


def ivix_frame(chain: pd.DataFrame, context: ChainContext) -> pd.DataFrame:
    """``ivix30``, ``ivix60`` per trade date (SSE iVIX preset; NaN where the calculator's
    status is not ok), plus the calculator's ``ivix_status``."""

    res = compute_vix(chain, IVIX_PRESET, _vix_rates(context), dates=_dates_index(chain))
    index = res.index
    return pd.DataFrame(
        {
            "ivix30": index["vix30"].to_numpy(dtype=float),
            "ivix60": index["vix60"].to_numpy(dtype=float),
            "ivix_status": index["status"].to_numpy(),
        },
        index=index.index.rename("trade_date"),
    )


def rnd_frame(chain: pd.DataFrame, context: ChainContext) -> pd.DataFrame:
    """30-day risk-neutral moments per trade date (see the module docstring)."""

    dates = _dates_index(chain)
    days = (chain["expiry"] - chain["trade_date"]).dt.days.to_numpy()
    fitted = chain.loc[days >= RND_MIN_DAYS]  # shorter expiries are never fitted
    table = pd.DataFrame()
    if len(fitted):
        table = rnd_horizon_moments(
            fitted,
            rate_cc=_rnd_rates(context),
            target_days=RND_TARGET_DAYS,
            fractions=tuple(RND_FRACTIONS),
            min_days=RND_MIN_DAYS,
        )
    if table.empty:
        return pd.DataFrame(index=dates, columns=list(RND.columns), dtype=float)
    table = table.set_index(pd.DatetimeIndex(table["trade_date"], name="trade_date"))
    out = pd.DataFrame(
        {
            "rnd_mean": table["forward"],
            "rnd_std": table["std"],
            "rnd_vol": table["rnd_vol"],
            "rnd_skew": table["skewness"],
            "rnd_kurt": table["excess_kurtosis"],
        }
    )
    for frac, col in RND_FRACTIONS.items():
        out[col] = table[f"prob_below_{frac:g}"]
    return out.reindex(dates)


def _refit_positions(dates: pd.DatetimeIndex) -> np.ndarray:
    """For each date, the position of the first date of its ISO week (in ``dates``)."""
    iso = dates.isocalendar()
    week = (iso["year"].to_numpy() * 100 + iso["week"].to_numpy()).astype(np.int64)
    new = np.concatenate([[True], week[1:] != week[:-1]])
    return np.maximum.accumulate(np.where(new, np.arange(len(dates)), 0))


def _fitted_forest(config, x_train: np.ndarray):
    key = (repr(config.forest), x_train.shape, pd.util.hash_array(x_train.ravel()).sum())
    model = _MODELS.get(key)
    if model is None:
        model = config.forest.make(x_train.shape[1]).fit(x_train)
        _MODELS[key] = model
        while len(_MODELS) > _MODEL_MEMO_MAX:
            _MODELS.popitem(last=False)
    else:
        _MODELS.move_to_end(key)
    return model


def anomaly_frame(chain: pd.DataFrame, context: ChainContext) -> pd.DataFrame:
    """Daily anomaly aggregates with weekly, date-anchored refits (module docstring)."""

    settings = ANOMALY
    config = settings.config()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataQualityWarning)
        features = option_features(chain, config, rate_cc=_anomaly_rates(context, chain))
    for w in caught:  # rows without a feature are not scored: counted, not an error
        if isinstance(w.message, DataQualityWarning):
            logger.info("%s", w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    frame = features.frame
    x = features.matrix()
    usable = frame["usable"].to_numpy()
    codes, days = pd.factorize(frame["trade_date"], sort=True)
    starts = np.searchsorted(codes, np.arange(len(days) + 1))
    refit = _refit_positions(pd.DatetimeIndex(days))
    score = np.full(len(frame), np.nan)
    label = np.zeros(len(frame), dtype=bool)
    n_train = np.zeros(len(days), dtype=int)
    for r in np.unique(refit):
        if r < settings.window_days:
            continue  # warm-up: the refit date lacks a full window of earlier dates
        lo, hi = starts[r - settings.window_days], starts[r]
        train = np.arange(lo, hi)[usable[lo:hi]]
        if train.size < settings.min_train_rows:
            continue
        model = _fitted_forest(config, x[train])
        week = np.flatnonzero(refit == r)
        rows = np.arange(starts[week[0]], starts[week[-1] + 1])
        rows = rows[usable[rows]]
        if rows.size:
            raw = model.score_samples(x[rows])
            score[rows], label[rows] = -raw, raw < model.offset_
        n_train[week] = train.size
    n_days = len(days)
    scored = np.isfinite(score)
    n_scored = np.bincount(codes, weights=scored, minlength=n_days)
    count = np.bincount(codes, weights=label & scored, minlength=n_days)
    total = np.bincount(codes, weights=np.where(scored, score, 0.0), minlength=n_days)
    trained = n_train > 0
    has = trained & (n_scored > 0)
    safe = np.where(has, n_scored, 1.0)
    return pd.DataFrame(
        {
            "anomaly_count": np.where(has, count, np.nan),
            "anomaly_fraction": np.where(has, count / safe, np.nan),
            "anomaly_score": np.where(has, total / safe, np.nan),
            "anomaly_train_rows": n_train,
        },
        index=pd.DatetimeIndex(days, name="trade_date"),
    )


# --------------------------------------------------------------------------- registration


def _series(name, columns, fn, lookback, description) -> ChainSeriesSpec:
    return ChainSeriesSpec(
        name=name,
        columns=columns,
        compute=_per_date_cached(name, columns, lookback, fn),
        lookback_days=lookback,
        description=description,
    )


IVIX = _series(
    "ivix", ("ivix30", "ivix60"), ivix_frame, 1,
    "SSE iVIX (30- and 60-day) from the chain, sse_ivix preset",
)  # fmt: skip
RND = _series(
    "rnd",
    ("rnd_mean", "rnd_std", "rnd_vol", "rnd_skew", "rnd_kurt", *RND_FRACTIONS.values()),
    rnd_frame,
    0,
    "30-day risk-neutral density moments and left-tail probabilities (Bondarenko PCA)",
)
ANOMALY_SERIES = _series(
    "anomaly", ("anomaly_count", "anomaly_fraction", "anomaly_score"), anomaly_frame,
    ANOMALY_LOOKBACK, "daily Isolation Forest anomaly aggregates (rolling, weekly refits)",
)  # fmt: skip

ETF50_OPTIONS = ChainDatasetSpec(
    name=CHAIN,
    underlying=UNDERLYING,
    load_shared=load_etf50_shared,
    load_synthetic=load_etf50_synthetic,
    description="SSE 50ETF options: JoinQuant closes + SHIBOR (shared), Heston chains (embedded)",
)

if CHAIN not in chainseries.CHAIN_DATASETS:
    chainseries.register_chain_dataset(ETF50_OPTIONS)
for _spec in (IVIX, RND, ANOMALY_SERIES):
    if _spec.columns[0] not in chainseries.SERIES:
        chainseries.register_series(_spec)


# --------------------------------------------------------------------------- filters


def _check_chain(name: str) -> str:
    """A chain name (``column@chain`` is checked with the config's data section, where a
    ``data.datasets`` chain entry may define it: ``inputs.config._check_chain_inputs``)."""
    if not name or "@" in name:
        raise ValueError(f"{name!r} is not an option-chain dataset name (e.g. {CHAIN})")
    return name


def _above(values: np.ndarray, level: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(values, nan=-np.inf) > level  # NaN (no value): not flagged


class _ChainFilter(FilterParams):
    chain: str = Field(CHAIN, description="option-chain dataset the filter reads")

    @field_validator("chain")
    @classmethod
    def _known_chain(cls, value: str) -> str:
        return _check_chain(value)


class RndTailFilter(_ChainFilter, ThresholdFilter):
    """Flag a bar when the 30-day risk-neutral probability of the underlying ending below
    ``fraction`` x spot exceeds ``threshold``."""

    fraction: Literal[0.8, 0.9, 0.95] = Field(0.9, description="tail: S_T below fraction x S")
    threshold: float = Field(..., gt=0.0, lt=1.0, description="flag when the probability is above")

    def series(self) -> str:
        return f"{RND_FRACTIONS[self.fraction]}@{self.chain}"

    def flags(self, values: np.ndarray) -> np.ndarray:
        return _above(values, self.threshold)

    def describe(self) -> str:
        return (
            f"rnd_tail: P[S_30d < {self.fraction:g} S] > {self.threshold:g} on {self.chain} "
            f"-> {self.action}"
        )


class AnomalyFilter(_ChainFilter):
    """Flag a bar when the fraction of the day's contracts flagged by the rolling Isolation
    Forest exceeds ``max_fraction``."""

    max_fraction: float = Field(..., gt=0.0, le=1.0, description="flag when the fraction is above")

    def series(self) -> str:
        return f"anomaly_fraction@{self.chain}"

    def flags(self, values: np.ndarray) -> np.ndarray:
        return _above(values, self.max_fraction)

    def describe(self) -> str:
        return (
            f"anomaly: fraction of anomalous contracts > {self.max_fraction:g} on {self.chain} "
            f"-> {self.action}"
        )


register_filter(
    FilterSpec("rnd_tail", RndTailFilter, "RND left-tail probability above a threshold")
)
register_filter(
    FilterSpec("anomaly", AnomalyFilter, "fraction of anomalous option prices above a maximum")
)
