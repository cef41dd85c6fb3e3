"""The futures executor: a strategy's role weights traded as VIX futures contracts (issue 12).

A config with a ``futures:`` section runs here instead of on the share-based executors. The
decision function is the same contract as every strategy's (``decide(inputs, params)``, causal
and prefix-stable); its columns are *roles*, resolved to listed contracts on the fill day:

* ``F<k>``: the k-th listed contract with more than ``roll.days_before_expiry`` business days
  to its final settlement (0: F1 is the front until the day before it settles, and on the
  settlement day the position settles at the final price and the next contract is bought);
* ``cm<d>``: the d-day constant-maturity pair, ``w1 F1 + (1 - w1) F2`` with the seed's
  ``w1 = (TTM2 - d)/(TTM2 - TTM1)`` in calendar days (``cm30`` = VXF30);
* ``st_index``: the legs and weights of the S&P 500 VIX Short-Term Futures Index
  (``engine.calculators.futures_curve.futures_index``): months 1 and 2 rolled daily.

A weight is a notional exposure as a fraction of equity (``size: notional``; a basket's
contracts are ``basket_contracts``) or a number of contracts (``size: contracts``). Every
trading day, in order: mark every position to the day's settle (variation margin moves cash),
settle the contracts whose final settlement date it is, check equity against the maintenance
margin (a margin call is an event: ``reduce`` cuts every position to what the initial margin
allows, ``stop`` closes everything and trades no more), then trade to the targets at the
settle. Trades fill at the settlement price (Cboe's trade-at-settlement orders exist for VX).
Cash earns nothing: returns are excess returns, like the S&P index's ER series.

Only the event-driven path runs futures: the vectorised sweep path refuses them
(:func:`engine.execution.instruments.refuse_fast_path`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from volbacktest.data.calendars import nyse_sessions
from volbacktest.data.catalogue import dataset_spec, resolve_files, roots_for
from volbacktest.data.cfe import load_vx_settles, matrix_sessions
from volbacktest.data.synthetic import generate_market
from volbacktest.engine.calculators.futures_book import (
    ContractBook,
    basket_contracts,
    contract_name,
    margin_call_action,
    margin_call_event,
    margin_call_scale,
)
from volbacktest.engine.calculators.futures_curve import (
    SettleMatrix,
    constant_maturity,
    futures_curve,
    futures_index,
)
from volbacktest.engine.errors import ConfigError, DataError
from volbacktest.engine.execution.instruments import (
    contract_decisions,
    end_of_day_lag,
    instrument,
    margin_metrics,
)
from volbacktest.engine.execution.metrics import (
    equity_returns,
    finite_or_none,
    performance_metrics,
    run_labels,
)
from volbacktest.engine.execution.result import BacktestResult
from volbacktest.engine.inputs.config import BacktestConfig
from volbacktest.engine.inputs.market import (
    WarmedUp,
    load_raw,
    warmup_frame,
    warmup_summary,
    with_warmup,
)
from volbacktest.strategies.vx import FUTURES_ROLE, ROLES_HELP, is_futures_role

# inputs a futures strategy may read, computed from the curve (others are catalogue datasets)
CURVE_INPUTS = ("f1", "f2", "f3", "f4", "bdays1", "bdays2", "cdays1", "cdays2", "vxf30")


def is_futures_run(cfg: BacktestConfig) -> bool:
    """A run trades futures contracts when its config has a ``futures:`` section."""
    return instrument(cfg) == "futures"


# --------------------------------------------------------------------------- market


@dataclass(frozen=True)
class FuturesMarket(WarmedUp):
    """The settle matrix of every contract, its sessions and the strategy's inputs: the
    warm-up bars (``warmup``, the history before ``data.start`` that ``data.warmup`` allows, as
    for shares: :func:`engine.inputs.market.warmup_frame`) then ``matrix.dates``."""

    matrix: SettleMatrix
    sessions: pd.DatetimeIndex
    inputs: dict[str, np.ndarray]
    source: str
    notes: tuple[str, ...] = ()
    warmup: pd.DataFrame | None = None
    warmup_setting: str = "none"

    @property
    def calendar(self) -> pd.DatetimeIndex:
        return self.matrix.dates


def _settles(cfg: BacktestConfig) -> tuple[SettleMatrix, pd.DatetimeIndex, str]:
    data = cfg.data
    if data.source == "synthetic":
        syn = data.synthetic
        gen = generate_market(None, syn.seed, syn.start, syn.end)
        settle = gen.futures_settle.rename_axis(index="date", columns="expiry")
        matrix = SettleMatrix(
            settle, settle.notna(), pd.Series("synthetic", index=settle.index, name="source")
        )
        sessions = nyse_sessions(
            settle.index[0] - pd.Timedelta(days=120), settle.columns[-1] + pd.Timedelta(days=40)
        )
        return matrix, sessions, f"synthetic (seed {syn.seed})"
    paths = resolve_files(dataset_spec("vx1_cfe"), roots_for(data.root))
    continuous = paths[1] if cfg.futures.continuous else None
    matrix = load_vx_settles(paths[0].parent, continuous)
    source = f"CFE per-contract files {paths[0].parent}" + (
        f" + continuous {continuous.name}" if continuous else ""
    )
    return matrix, matrix_sessions(matrix), source


def futures_market(cfg: BacktestConfig) -> FuturesMarket:
    """Settles, sessions and the decision inputs of ``cfg`` (curve inputs and datasets), with
    the inputs' history before ``data.start`` as warm-up (``data.warmup``)."""
    full, sessions, source = _settles(cfg)
    matrix = full
    if cfg.data.start or cfg.data.end:
        matrix = full.between(
            pd.Timestamp(cfg.data.start) if cfg.data.start else None,
            pd.Timestamp(cfg.data.end) if cfg.data.end else None,
        )
    if len(matrix.dates) < 2:
        raise ConfigError(f"{cfg.name}: data.start/end leave fewer than 2 futures dates")
    curve = futures_curve(matrix, sessions, n=4)
    dates = matrix.dates
    on_dates: dict[str, np.ndarray] = {}
    raw: dict[str, pd.DataFrame] = {}  # each input on its own dates (warm-up reads before start)
    notes: list[str] = list(matrix.notes)
    before = full.between(None, dates[0] - pd.Timedelta(days=1))
    early = futures_curve(before, sessions, n=4) if len(before.dates) else None
    for name in cfg.plan.inputs():
        if name in CURVE_INPUTS:
            on_dates[name] = _curve_input(curve, name)
            past = _curve_input(early, name) if early is not None else np.empty(0)
            raw[name] = pd.DataFrame({"close": past}, index=before.dates)
            continue
        close = load_raw(name, cfg.data)["close"].astype(float)
        raw[name] = close.to_frame("close")
        aligned = close.reindex(dates.union(close.index)).ffill(limit=cfg.data.ffill_limit)
        on_dates[name] = aligned.reindex(dates).to_numpy()
        missing = int(np.isnan(on_dates[name]).sum())
        if missing:
            notes.append(f"{name}: no value on {missing} futures dates (no decision there)")
    names = tuple(cfg.plan.inputs())
    warm = warmup_frame(raw, names, dates, cfg.data, notes)
    return FuturesMarket(
        matrix,
        sessions,
        with_warmup(on_dates, warm),
        source,
        tuple(notes),
        warm,
        str(cfg.data.warmup),
    )


def _curve_input(curve, name: str) -> np.ndarray:
    if name == "vxf30":
        return constant_maturity(curve).value.to_numpy(dtype=float)
    k = int(name[-1])
    frame = {"f": curve.price, "b": curve.business_days, "c": curve.calendar_days}[name[0]]
    return frame[k].to_numpy(dtype=float)


# --------------------------------------------------------------------------- roles


@dataclass(frozen=True)
class RoleLegs:
    """Contracts (expiries, NaT where none) and units (contracts per basket) of one role on
    every date: arrays of shape (n_dates, n_legs)."""

    expiry: np.ndarray
    units: np.ndarray


def role_legs(role: str, market: FuturesMarket, days_before_expiry: int) -> RoleLegs:
    """Where the role ``role`` sits on each date (see the module docstring)."""
    m = FUTURES_ROLE.match(role)
    if m is None:
        raise ConfigError(f"strategy asset {role!r} is not a futures role; valid: {ROLES_HELP}")
    matrix, sessions = market.matrix, market.sessions
    n = len(matrix.dates)
    if m.group("st"):
        index = futures_index(matrix, sessions, "short_term", start="auto")
        legs = index.legs.reindex(matrix.dates)
        w = index.weights.reindex(matrix.dates)
        return RoleLegs(legs.to_numpy(dtype="datetime64[ns]"), w.to_numpy(dtype=float))
    if m.group("d"):
        curve = futures_curve(matrix, sessions, n=2)
        cm = constant_maturity(curve, int(m.group("d")))
        w1 = cm.w1.to_numpy(dtype=float)
        expiry = curve.expiry[[1, 2]].to_numpy(dtype="datetime64[ns]")
        return RoleLegs(expiry, np.column_stack([w1, 1.0 - w1]))
    k = int(m.group("k"))
    curve = futures_curve(matrix, sessions, n=min(24, k + days_before_expiry // 15 + 3))
    bdays = curve.business_days.to_numpy(dtype=float)
    after_roll = np.nan_to_num(bdays, nan=-1.0) > days_before_expiry
    col = after_roll.argmax(axis=1) + k - 1
    expiries = curve.expiry.to_numpy(dtype="datetime64[ns]")
    ok = after_roll.any(axis=1) & (col < expiries.shape[1])
    expiry = np.full((n, 1), np.datetime64("NaT"), dtype="datetime64[ns]")
    rows = np.flatnonzero(ok)
    expiry[rows, 0] = expiries[rows, col[rows]]
    return RoleLegs(expiry, np.ones((n, 1)))


# --------------------------------------------------------------------------- executor


@dataclass
class _Account:
    book: ContractBook
    stopped: bool = False
    events: list | None = None
    margin_limited: int = 0


def _margin_call(acct: _Account, day, on_call: str, settle: dict) -> bool:
    """Maintenance check after marking; True when the day's trading is over."""
    book = acct.book
    if not book.held():
        return False
    equity, maint = book.equity, book.requirement("maintenance")
    call = margin_call_action(equity, maint, book.requirement("initial"), on_call)
    if call is None:
        return False
    action, keep = call
    before = {e: book.positions[e] for e in book.held()}
    targets = {e: _toward_zero(n * keep, book.terms.fractional) for e, n in before.items()}
    book.trade_to(day, targets, settle, dict.fromkeys(targets, "margin_call"))
    acct.events.append(
        margin_call_event(
            day,
            equity,
            maint,
            action,
            {contract_name(e): n for e, n in before.items()},
            {contract_name(e): book.positions.get(e, 0.0) for e in before},
        )
    )
    acct.stopped = action == "stop"
    return True


def _toward_zero(n: float, fractional: bool) -> float:
    return n if fractional else float(math.trunc(n))


def _targets(row, legs, t, day, equity, settle, cfg) -> dict:
    """Contracts per expiry for the role weights ``row`` on date index ``t``."""
    fut = cfg.futures
    out: dict = {}
    for x, rl in zip(row, legs, strict=True):
        if x == 0:
            continue
        exp, units = rl.expiry[t], rl.units[t]
        use = ~np.isnat(exp) & (units != 0)
        if not use.any():
            raise ConfigError(
                f"{cfg.name}: no listed contract for a futures role on "
                f"{day:%Y-%m-%d}; start the backtest later"
            )
        keys = [pd.Timestamp(e) for e in exp[use]]
        prices = np.array([settle.get(k, np.nan) for k in keys])
        if not np.isfinite(prices).all():
            missing = keys[int(np.flatnonzero(~np.isfinite(prices))[0])]
            raise DataError(
                f"{cfg.name}: {contract_name(missing)} is targeted on {day:%Y-%m-%d} but has no "
                "settlement price that day; fix that contract's file or start later"
            )
        if fut.size == "contracts":
            n = x * units[use]
        else:
            n = basket_contracts(x, equity, units[use], prices, fut.multiplier)
        for k, c in zip(keys, n, strict=True):
            out[k] = out.get(k, 0.0) + float(c)
    return out


def _fit_initial_margin(targets: dict, settle: dict, equity: float, book: ContractBook) -> bool:
    """Scale ``targets`` in place so their initial margin fits in equity; True if it had to."""
    if not targets:
        return False
    keys = list(targets)
    need = book.terms.requirement(
        np.array([book.terms.round_contracts(targets[k]) for k in keys]),
        np.array([settle[k] for k in keys]),
        "initial",
    )
    if need <= max(equity, 0.0):
        return False
    s = margin_call_scale(equity, need)
    for k in keys:
        targets[k] = _toward_zero(targets[k] * s, book.terms.fractional)
    return True


def _reasons(targets, book, changed_signal, rolled_contracts) -> dict:
    out = {}
    for e in set(targets) | set(book.held()):
        if changed_signal:
            out[e] = "signal"
        elif e in rolled_contracts:
            out[e] = "roll"
        else:
            out[e] = "rebalance"
    return out


def _checked_roles(cfg: BacktestConfig) -> tuple[str, ...]:
    roles = tuple(cfg.plan.assets())
    bad = [r for r in roles if not is_futures_role(r)]
    if bad:
        raise ConfigError(
            f"{cfg.name}: strategy.params: {bad[0]!r} is not a futures role; a futures: config "
            f"trades roles {ROLES_HELP}"
        )
    return roles


def _rolled_contracts(now_legs, prev_legs) -> set:
    """Contracts that entered or left a role's legs, or whose units changed, since the last
    decision day (the trades they cause are marked ``roll``)."""
    if prev_legs is None or now_legs == prev_legs:
        return set()
    out = set()
    for (e_now, _), (e_prev, _) in zip(now_legs, prev_legs, strict=True):
        out |= {pd.Timestamp(e) for e in e_now + e_prev if not np.isnat(e)}
    return out


@dataclass
class _Decisions:
    """The last decision row and role legs traded (for on_change rebalancing and roll marks)."""

    row: np.ndarray | None = None
    legs: list | None = None


def _decide_and_trade(cfg, acct, last: _Decisions, w_row, legs, t, day, settle) -> None:
    book = acct.book
    now_legs = [(tuple(rl.expiry[t]), tuple(rl.units[t])) for rl in legs]
    if not np.isnan(w_row).all():
        row = np.nan_to_num(w_row, nan=0.0)
        changed = last.row is None or not np.array_equal(row, last.row)
        rolled = _rolled_contracts(now_legs, last.legs)
        if cfg.execution.rebalance == "daily" or changed or rolled:
            targets = _targets(row, legs, t, day, book.equity, settle, cfg)
            if _fit_initial_margin(targets, settle, book.equity, book):
                acct.margin_limited += 1
            book.trade_to(day, targets, settle, _reasons(targets, book, changed, rolled))
        last.row = row
    last.legs = now_legs


def run_futures_backtest(
    cfg: BacktestConfig, market: FuturesMarket | None = None, *, runonce: bool = True
):
    """Run ``cfg`` (with a ``futures:`` section) day by day on the contract book.

    ``runonce=False`` evaluates the decision bar by bar on growing prefixes of the inputs
    (:func:`engine.execution.instruments.bar_by_bar_weights`) instead of once over the whole
    arrays: same results for a causal, prefix-stable strategy."""
    fut = cfg.futures
    if fut is None:
        raise ConfigError(f"{cfg.name}: no futures: section; use run_backtest")
    lag = end_of_day_lag(cfg)
    roles = _checked_roles(cfg)
    market = market or futures_market(cfg)
    plan = cfg.plan
    weights = contract_decisions(plan, market.inputs, market.n_warmup, runonce=runonce)
    legs = [role_legs(r, market, fut.roll.days_before_expiry) for r in roles]
    settle_values = market.matrix.settle.to_numpy(dtype=float)
    expiries = list(market.matrix.expiries)
    acct = _Account(ContractBook(fut.terms(), cfg.execution.initial_cash), events=[])
    book = acct.book
    rows: list[dict] = []
    held_rows: list[dict] = []
    last = _Decisions()
    for t, day in enumerate(market.matrix.dates):
        priced = np.flatnonzero(np.isfinite(settle_values[t]))  # listed and settled that day
        settle = {expiries[j]: settle_values[t, j] for j in priced}
        book.mark(day, settle)
        book.settle_expired(day)
        stop_today = acct.stopped or _margin_call(acct, day, fut.on_margin_call, settle)
        if not stop_today and t >= lag:
            _decide_and_trade(cfg, acct, last, weights[t - lag], legs, t, day, settle)
        held = {e: book.positions[e] for e in book.held()}
        rows.append(
            {
                "date": day,
                "equity": book.equity,
                "initial_margin": book.requirement("initial"),
                "maintenance_margin": book.requirement("maintenance"),
                "notional": float(
                    sum(abs(n) * fut.multiplier * settle[e] for e, n in held.items())
                ),
            }
        )
        held_rows.append({contract_name(e): n for e, n in held.items()})
    return _result(cfg, market, weights, roles, rows, held_rows, acct)


def _result(cfg, market, weights, roles, rows, held_rows, acct) -> BacktestResult:
    fut = cfg.futures
    daily = pd.DataFrame(rows).set_index("date")
    dates = daily.index
    equity = daily["equity"].rename("equity")
    returns = equity_returns(equity, cfg.execution.initial_cash)
    holdings = pd.DataFrame(held_rows, index=dates).fillna(0.0)
    holdings = holdings[sorted(holdings.columns, key=lambda c: c.split("(")[-1])]
    prices = market.matrix.settle.copy()
    prices.columns = [contract_name(e) for e in prices.columns]
    positions = holdings * prices.reindex(index=dates, columns=holdings.columns) * fut.multiplier
    positions = positions.fillna(0.0)
    positions["cash"] = equity - positions.sum(axis=1)
    trades = pd.DataFrame(
        acct.book.trades,
        columns=["date", "contract", "expiry", "size", "price", "fee", "reason"],
    )
    tx = trades.rename(columns={"contract": "symbol", "fee": "commission"})
    tx["value"] = 0.0  # futures: no cash changes hands at the trade, only the fee
    scaled = tx.assign(size=tx["size"] * fut.multiplier)  # turnover in notional USD
    metrics = performance_metrics(returns, positions, scaled, equity)
    metrics.update(
        {
            **run_labels(
                cfg,
                market.source,
                fill=cfg.execution.fill_label() + " (at the daily settlement price)",
            ),
            "instrument": "VIX futures contracts",
            "contracts": fut.contracts,
            "multiplier": fut.multiplier,
            "fees_paid": finite_or_none(trades["fee"].sum()),
            "roll_trades": int((trades["reason"] == "roll").sum()),
            "final_settlements": int((trades["reason"] == "final_settlement").sum()),
            **margin_metrics(daily, acct.events, acct.margin_limited, acct.stopped),
        }
    )
    warm_metrics, warm_note = warmup_summary(market, weights)
    metrics.update(warm_metrics)
    weights_frame = pd.DataFrame(weights, index=dates, columns=list(roles))
    return BacktestResult(
        config=cfg,
        equity=equity,
        returns=returns,
        positions=positions,
        holdings=holdings,
        transactions=tx,
        weights=weights_frame,
        metrics=metrics,
        market_notes=(*market.notes, warm_note),
        margin=daily,
    )
