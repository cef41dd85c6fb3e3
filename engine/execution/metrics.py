"""Performance metrics of a daily return series (empyrical-reloaded) plus trading statistics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

TRADING_DAYS_PER_YEAR = 252
# The headline metrics of a run (tables, rankings, comparison reports).
SUMMARY_METRICS = (
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "total_return",
    "turnover",
    "trades",
    "exposure",
)


def finite_or_none(x) -> float | None:
    """A float, or None for None/NaN/inf (JSON and SQLite friendly)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def performance_metrics(
    returns: pd.Series,
    positions: pd.DataFrame,
    transactions: pd.DataFrame,
    equity: pd.Series,
) -> dict:
    """CAGR, annual volatility, Sharpe, Sortino, max drawdown, Calmar (empyrical, daily, rf = 0),
    and turnover (annualised traded value / mean equity), trades, exposure."""
    import empyrical as ep

    r = returns.astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empyrical divides by a zero vol
        out = {
            "cagr": finite_or_none(ep.annual_return(r, period="daily")),
            "annual_volatility": finite_or_none(ep.annual_volatility(r, period="daily")),
            "sharpe": finite_or_none(ep.sharpe_ratio(r, period="daily")),
            "sortino": finite_or_none(ep.sortino_ratio(r, period="daily")),
            "max_drawdown": finite_or_none(ep.max_drawdown(r)),
            "calmar": finite_or_none(ep.calmar_ratio(r, period="daily")),
        }
    years = len(r) / TRADING_DAYS_PER_YEAR
    traded = (
        float((transactions["size"].abs() * transactions["price"]).sum())
        if len(transactions)
        else 0.0
    )
    gross = positions.drop(columns="cash").abs().sum(axis=1)
    exposure = (gross / equity).replace([np.inf, -np.inf], np.nan)
    out.update(
        {
            "total_return": finite_or_none(equity.iloc[-1] / equity.iloc[0] * (1 + r.iloc[0]) - 1)
            if len(equity)
            else None,
            "final_equity": finite_or_none(equity.iloc[-1]),
            "turnover": finite_or_none(traded / float(equity.mean()) / years)
            if years > 0
            else None,
            "trades": len(transactions),
            "exposure": finite_or_none(exposure.mean()),
            "time_in_market": finite_or_none((gross > 0).mean()),
            "start": f"{r.index[0]:%Y-%m-%d}",
            "end": f"{r.index[-1]:%Y-%m-%d}",
            "bars": len(r),
        }
    )
    return out


def run_labels(cfg, data_source: str, *, fill: str | None = None, rule: str | None = None):
    """What every run's metrics say about how it ran (each executor adds its own after):
    strategy, rule (``cfg.plan.describe()``), fill (``cfg.execution.fill_label()``), the
    look-ahead flag and the data source."""
    return {
        "strategy": cfg.strategy.name,
        "rule": rule or cfg.plan.describe(),
        "fill": fill or cfg.execution.fill_label(),
        "look_ahead": cfg.execution.look_ahead,
        "data_source": data_source,
    }


def rolling_sharpe(returns: pd.Series, window: int = 126) -> pd.Series:
    """Annualised Sharpe ratio over a trailing window of daily returns (rf = 0)."""
    mean = returns.rolling(window).mean()
    std = returns.rolling(window).std(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = mean / std * math.sqrt(TRADING_DAYS_PER_YEAR)
    return out.replace([np.inf, -np.inf], np.nan)


# The benchmark-relative metrics of a run (``report.benchmark``), in metrics.json order.
BENCHMARK_METRICS = (
    "alpha",
    "beta",
    "correlation",
    "information_ratio",
    "tracking_error",
    "up_capture",
    "down_capture",
    "benchmark_cagr",
)


def benchmark_metrics(returns: pd.Series, benchmark: pd.Series) -> dict:
    """Daily returns against a benchmark's daily returns on the same dates (rf = 0).

    * ``alpha``, ``beta``: CAPM regression of the run on the benchmark (empyrical's
      ``alpha_beta``: beta = cov(r, b) / var(b), alpha = (1 + mean(r − beta b))^252 − 1);
    * ``correlation``: Pearson correlation of the daily returns;
    * ``tracking_error``: annualised standard deviation (ddof 1) of the active return r − b;
    * ``information_ratio``: annualised mean active return / tracking error;
    * ``up_capture`` / ``down_capture``: the run's CAGR over the days the benchmark rose (fell)
      divided by the benchmark's CAGR over the same days (empyrical);
    * ``benchmark_cagr``: the benchmark's own CAGR over the run's dates.

    Dates where either series is NaN are left out of every figure.
    """
    import empyrical as ep

    both = pd.concat({"r": returns.astype(float), "b": benchmark.astype(float)}, axis=1).dropna()
    r, b = both["r"], both["b"]
    if len(both) < 2:
        return dict.fromkeys(BENCHMARK_METRICS)
    active = (r - b).to_numpy()
    te = float(np.std(active, ddof=1))
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # flat series: zero variance
        alpha, beta = ep.alpha_beta(r, b, period="daily")
        corr = float(np.corrcoef(r.to_numpy(), b.to_numpy())[0, 1])
        return {
            "alpha": finite_or_none(alpha),
            "beta": finite_or_none(beta),
            "correlation": finite_or_none(corr),
            "information_ratio": finite_or_none(
                float(np.mean(active)) / te * math.sqrt(TRADING_DAYS_PER_YEAR)
            )
            if te > 0
            else None,
            "tracking_error": finite_or_none(te * math.sqrt(TRADING_DAYS_PER_YEAR)),
            "up_capture": finite_or_none(ep.up_capture(r, b, period="daily")),
            "down_capture": finite_or_none(ep.down_capture(r, b, period="daily")),
            "benchmark_cagr": finite_or_none(ep.annual_return(b, period="daily")),
        }


def rolling_volatility(returns: pd.Series, window: int = 126) -> pd.Series:
    """Annualised volatility (ddof 1) over a trailing window of daily returns."""
    return returns.rolling(window).std(ddof=1) * math.sqrt(TRADING_DAYS_PER_YEAR)


def equity_returns(equity: pd.Series, initial_cash: float) -> pd.Series:
    """Daily returns of an equity curve, the first bar's against the initial cash."""
    returns = equity.pct_change()
    returns.iloc[0] = equity.iloc[0] / initial_cash - 1.0
    returns.name = "returns"
    return returns
