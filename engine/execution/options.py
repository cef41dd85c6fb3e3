"""The options executor: a strategy's option legs traded as listed contracts (issue 13).

A config with an ``options:`` section runs here. The strategy (``strategies.options_income``)
gives leg rules and a gate column on the chain's underlying (the decision function, causal and
prefix-stable, so the iVIX / RND filters gate it like any strategy). Every session of the
underlying, in order:

1. the cash account earns ``collateral_rate`` over the calendar days since the last session;
2. contracts expiring today settle on the underlying's settlement price (the open for A.M.
   settlement, as Cboe's SOQ; the close for P.M.): cash at intrinsic value, or exercise into
   the underlying with the assignment recorded (``settlement: physical``);
3. every held contract is marked to today's chain row (mid of bid/ask, else close); a contract
   without a row keeps its last mark and counts as a stale day, as does an unchanged quote on a
   day the underlying moved;
4. equity is checked against the short options' maintenance margin (SSE or Cboe rule): below it
   a margin call event is recorded and answered by ``reduce`` (buy back to what the opening
   margin allows, ``futures_book.margin_call_scale``) or ``stop`` (close all, trade no more);
5. the gate of the decision (lagged by ``execution.fill``) and the roll rule: a zero gate closes
   everything; with no legs held (start, after expiry, after a roll) the legs are chosen from
   *today's chain rows only* (``engine.calculators.option_legs``) and sold or bought at today's
   quotes (``options.fill``); a leg that finds no expiry or strike is a per-date status and is
   tried again the next session;
6. with ``delta_hedge`` the underlying is traded to offset the options' Black-Scholes delta.

Fills use end-of-day quotes (the chains are daily): the decision and the fill are both at the
day's close (``same_close``) unless ``execution.fill: next_close`` lags the gate a day. Only the
event-driven path runs options: the vectorised sweep path refuses them (:func:`refuse_fast_path`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from volbacktest.engine.calculators.bs import DAYS_PER_YEAR
from volbacktest.engine.calculators.futures_book import (
    margin_call_action,
    margin_call_event,
    margin_call_scale,
)
from volbacktest.engine.calculators.option_legs import (
    NO_BID,
    NO_EXPIRY,
    choose_expiry,
    choose_strike,
    deltas,
    wing_mark,
)
from volbacktest.engine.calculators.options_book import (
    OptionBook,
    OptionKey,
    fill_price,
    mark_prices,
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
from volbacktest.engine.inputs.chainseries import chain_dataset, load_chain
from volbacktest.engine.inputs.config import BacktestConfig
from volbacktest.engine.inputs.market import WarmedUp, market_for, warmup_summary


def is_options_run(cfg: BacktestConfig) -> bool:
    """A run trades listed options when its config has an ``options:`` section."""
    return instrument(cfg) == "options"


# --------------------------------------------------------------------------- market


@dataclass(frozen=True)
class OptionsMarket(WarmedUp):
    """The underlying's sessions and prices, the chain rows sorted by trade date with the row
    range of each session (``bounds[t]:bounds[t + 1]``), and the decision's inputs: the warm-up
    bars (``warmup``, the history before ``data.start`` that ``data.warmup`` allows, from
    ``market_for`` as for shares) then ``dates``."""

    dates: pd.DatetimeIndex
    close: np.ndarray
    open: np.ndarray
    chain: dict[str, np.ndarray]
    bounds: np.ndarray
    inputs: dict[str, np.ndarray]
    multiplier: float
    rate: float  # the chain's constant rate (NaN when it has a curve)
    source: str
    mark_source: str  # "mid" | "close" | "mid and close"
    notes: tuple[str, ...] = ()
    warmup: pd.DataFrame | None = None
    warmup_setting: str = "none"

    @property
    def calendar(self) -> pd.DatetimeIndex:
        return self.dates


def _chain_spec(cfg: BacktestConfig):
    try:
        spec = chain_dataset(cfg.options.chain, cfg.data)
    except ConfigError as exc:
        raise ConfigError(f"{cfg.name}: options.chain: {exc}") from None
    if spec.underlying != cfg.params.underlying:
        raise ConfigError(
            f"{cfg.name}: options.chain {spec.name!r} is on {spec.underlying!r} but "
            f"strategy.params.underlying is {cfg.params.underlying!r}; set underlying: "
            f"{spec.underlying}"
        )
    return spec


def options_market(cfg: BacktestConfig) -> OptionsMarket:
    """The market an options config trades: underlying and inputs (``market_for``) and the
    chain rows of the calendar's sessions, marks computed once."""
    spec = _chain_spec(cfg)
    market = market_for(cfg)
    dates = market.calendar
    under = market.frames[spec.underlying]
    chain, context = load_chain(spec.name, cfg.data)
    td = chain["trade_date"].to_numpy(dtype="datetime64[ns]")
    keep = (td >= dates[0].to_datetime64()) & (td <= dates[-1].to_datetime64())
    mult = chain["multiplier"].to_numpy(dtype=float)
    listed = pd.Series(mult[keep & np.isfinite(mult)])
    if listed.empty:
        raise DataError(f"{spec.name}: no contract with a multiplier in the backtest's window")
    multiplier = float(listed.mode().iloc[0])  # the standard contract's unit
    odd = keep & (mult != multiplier)
    notes = list(market.notes)
    if odd.any():
        notes.append(
            f"{spec.name}: {int(odd.sum())} rows with a multiplier other than {multiplier:g} "
            "(adjusted contracts) are not traded"
        )
    rows = chain.loc[keep & (mult == multiplier)]
    order = np.argsort(rows["trade_date"].to_numpy(dtype="datetime64[ns]"), kind="stable")
    rows = rows.iloc[order]
    n = len(rows)

    def col(name):
        return rows[name].to_numpy(dtype=float) if name in rows else np.full(n, np.nan)

    bid, ask, close = col("bid"), col("ask"), col("close")
    mark, source = mark_prices(bid, ask, close)
    settlement = rows["settlement"].to_numpy() if "settlement" in rows else np.full(n, "PM")
    arrays = {
        "trade_date": rows["trade_date"].to_numpy(dtype="datetime64[ns]"),
        "expiry": rows["expiry"].to_numpy(dtype="datetime64[ns]"),
        "cp": rows["cp"].to_numpy().astype(str),
        "strike": rows["strike"].to_numpy(dtype=float),
        "bid": bid,
        "ask": ask,
        "close": close,
        "mark": mark,
        "settlement": np.asarray(settlement).astype(str),
    }
    bounds = np.searchsorted(arrays["trade_date"], dates.to_numpy(dtype="datetime64[ns]"))
    bounds = np.append(bounds, np.searchsorted(arrays["trade_date"], dates[-1].to_datetime64(),
                                               side="right"))  # fmt: skip
    used = set(np.unique(source))
    mark_source = " and ".join(s for s in ("mid", "close") if s in used) or "none"
    rate = float(context.rates) if isinstance(context.rates, int | float) else float("nan")
    inputs = market.decision_inputs(cfg.plan.inputs())
    return OptionsMarket(
        dates=dates,
        close=under["close"].to_numpy(dtype=float),
        open=under["open"].to_numpy(dtype=float),
        chain=arrays,
        bounds=bounds,
        inputs=inputs,
        multiplier=multiplier,
        rate=rate,
        source=market.source,
        mark_source=mark_source,
        notes=tuple(notes),
        warmup=market.warmup,
        warmup_setting=market.warmup_setting,
    )


# --------------------------------------------------------------------------- the day loop


@dataclass
class _State:
    book: OptionBook
    settle_style: dict = field(default_factory=dict)  # OptionKey -> "AM" | "PM"
    base_shares: float = 0.0
    events: list = field(default_factory=list)
    statuses: list = field(default_factory=list)
    stale: int = 0
    model_marks: int = 0
    margin_limited: int = 0
    stopped: bool = False


def _collateral_rate(cfg: BacktestConfig, market: OptionsMarket) -> float:
    rate = cfg.options.collateral_rate
    if rate == "chain":
        if not np.isfinite(market.rate):
            raise ConfigError(
                f"{cfg.name}: options.collateral_rate: chain, but {cfg.options.chain} has a rate "
                "curve, not one rate; give a number (decimal per year)"
            )
        return market.rate
    return float(rate)


def _row_of(market: OptionsMarket, lo: int, hi: int, key: OptionKey) -> int:
    c = market.chain
    hit = np.flatnonzero(
        (c["expiry"][lo:hi] == key.expiry.to_datetime64())
        & (c["cp"][lo:hi] == key.cp)
        & np.isclose(c["strike"][lo:hi], key.strike, rtol=0, atol=1e-9)
    )
    return int(lo + hit[0]) if hit.size else -1


def _fill(cfg, market, row: int, side: float) -> tuple[float, str]:
    c, f = market.chain, cfg.options.fill
    return fill_price(side, c["bid"][row], c["ask"][row], c["close"][row], f.price,
                      f.spread_fraction, f.slippage)  # fmt: skip


def _close_options(cfg, st: _State, market, t: int, reason: str) -> None:
    book, day = st.book, market.dates[t]
    lo, hi = market.bounds[t], market.bounds[t + 1]
    for key in book.held():
        n = book.positions[key]
        row = _row_of(market, lo, hi, key)
        if row >= 0:
            price, source = _fill(cfg, market, row, float(np.sign(-n)))
        else:
            price, source = book.marks[key], "last_mark"
        if not np.isfinite(price):
            price, source = book.marks[key], "last_mark"
        book.trade(day, key, -n, price, reason, source)


def _mark(st: _State, market: OptionsMarket, t: int, count_stale: bool = True) -> None:
    """Mark held contracts to today's rows (the mid, else the close). A contract without a row
    (its strike has left the listed range) gets a model mark (:func:`wing_mark`, counted in
    ``model_mark_days``), else keeps its last mark; with ``count_stale`` a carried mark or an
    unmoved quote on a day the underlying moved counts a stale day."""
    book, c = st.book, market.chain
    lo, hi = market.bounds[t], market.bounds[t + 1]
    moved = t > 0 and market.close[t] != market.close[t - 1]
    for key in book.held():
        row = _row_of(market, lo, hi, key)
        mark = c["mark"][row] if row >= 0 else float("nan")
        if row < 0 and lo < hi:
            same = np.flatnonzero((c["expiry"][lo:hi] == key.expiry.to_datetime64())
                                  & (c["cp"][lo:hi] == key.cp)) + lo  # fmt: skip
            rate = market.rate if np.isfinite(market.rate) else 0.0
            tau = _days_to(key.expiry, market.dates[t]) / DAYS_PER_YEAR
            mark = wing_mark(key.cp, key.strike, c["strike"][same], c["mark"][same],
                             market.close[t], tau, rate)  # fmt: skip
            st.model_marks += count_stale and np.isfinite(mark)
        if not np.isfinite(mark):
            st.stale += count_stale  # no quote today: the last mark is carried
            continue
        if count_stale and row >= 0 and moved and mark == book.marks[key]:
            st.stale += 1  # the quote did not move while the underlying did
        book.mark(key, mark)


def _margin_call(cfg, st: _State, market, t: int) -> bool:
    """Maintenance check after marking; True when the day's trading is over."""
    book, spot, day = st.book, market.close[t], market.dates[t]
    if not book.held():
        return False
    equity, maint = book.equity(spot), book.requirement(spot)
    initial = book.requirement(spot, cfg.options.broker_multiple)
    call = margin_call_action(equity, maint, initial, cfg.options.on_margin_call)
    if call is None:
        return False
    action, keep = call
    before = {k: book.positions[k] for k in book.held()}
    lo, hi = market.bounds[t], market.bounds[t + 1]
    for key, n in before.items():
        size = book.terms.round_contracts(n * keep) - n
        row = _row_of(market, lo, hi, key)
        price, source = _fill(cfg, market, row, np.sign(size)) if row >= 0 else (np.nan, "")
        if not np.isfinite(price):
            price, source = book.marks[key], "last_mark"
        book.trade(day, key, size, price, "margin_call", source)
    if action == "stop" and book.shares:
        book.trade_shares(day, -book.shares, spot, "margin_call")
    st.events.append(
        margin_call_event(
            day,
            equity,
            maint,
            action,
            {k.name(): n for k, n in before.items()},
            {k.name(): book.positions.get(k, 0.0) for k in before},
        )
    )
    st.stopped = action == "stop"
    return True


def _days_to(expiry: pd.Timestamp, day: pd.Timestamp) -> int:
    return int((expiry - day).days)


def _sessions_to(market: OptionsMarket, t: int, expiry: pd.Timestamp) -> int:
    return int(np.searchsorted(market.dates.to_numpy(), expiry.to_datetime64())) - t


def _open_legs(cfg, st: _State, market, t: int, gate: float, rate_coll: float) -> None:
    """Set the underlying to its target and open every leg from today's chain rows."""
    book, p = st.book, cfg.params
    day, spot, m = market.dates[t], market.close[t], market.multiplier
    lo, hi = market.bounds[t], market.bounds[t + 1]
    c = market.chain
    equity = book.equity(spot)
    st.base_shares = p.hold_underlying * gate * equity / spot
    if st.base_shares != book.shares:
        book.trade_shares(day, st.base_shares - book.shares, spot, "underlying_target")
    pricing_rate = market.rate if np.isfinite(market.rate) else 0.0
    orders = []
    for i, leg in enumerate(p.legs):
        expiry = choose_expiry(day, c["expiry"][lo:hi], leg.expiry.rule, leg.expiry.min_days)
        if expiry is None:
            st.statuses.append({"date": day, "leg": i, "status": NO_EXPIRY})
            continue
        sel = np.flatnonzero((c["expiry"][lo:hi] == expiry.to_datetime64())
                             & (c["cp"][lo:hi] == leg.cp)) + lo  # fmt: skip
        tau = _days_to(expiry, day) / DAYS_PER_YEAR
        pick = choose_strike(leg.cp, c["strike"][sel], c["mark"][sel], spot, tau, pricing_rate,
                             leg.strike.by, leg.strike.value, leg.strike.pick)  # fmt: skip
        if pick.index < 0:
            st.statuses.append({"date": day, "leg": i, "status": pick.status})
            continue
        row = int(sel[pick.index])
        side = -1.0 if leg.side == "short" else 1.0
        price, source = _fill(cfg, market, row, side)
        if not (np.isfinite(price) and price > 0):
            st.statuses.append({"date": day, "leg": i, "status": NO_BID})
            continue
        key = OptionKey(expiry, leg.cp, float(c["strike"][row]))
        n = _quantity(leg.quantity, gate, equity, spot, m, key, price, book.shares,
                      rate_coll, _days_to(expiry, day))  # fmt: skip
        orders.append((i, key, side * n, price, source, c["settlement"][row]))
    _fit_opening_margin(cfg, st, orders, spot, equity)
    for i, key, n, price, source, style in orders:
        n = book.terms.round_contracts(n)
        if n == 0:
            st.statuses.append({"date": day, "leg": i, "status": "zero_contracts"})
            continue
        book.trade(day, key, n, price, "roll", source)
        st.settle_style[key] = style


def _fit_opening_margin(cfg, st: _State, orders: list, spot: float, equity: float) -> None:
    """Scale the new legs (in place) so the opening margin (rule x ``broker_multiple``) of the
    book with them fits in equity (``futures_book.margin_call_scale``)."""
    book = st.book
    if not orders or book.terms.margin_rule == "none":
        return
    trial = OptionBook(book.terms, 0.0, book.shares, dict(book.positions), dict(book.marks))
    for _, key, n, price, *_ in orders:
        trial.positions[key] = trial.positions.get(key, 0.0) + book.terms.round_contracts(n)
        trial.marks[key] = price
    need = trial.requirement(spot, cfg.options.broker_multiple)
    if need <= max(equity, 0.0):
        return
    s = margin_call_scale(equity, need)
    orders[:] = [(i, k, n * s, *rest) for i, k, n, *rest in orders]
    st.margin_limited += 1


def _quantity(q, gate, equity, spot, m, key, price, shares, rate_coll, days) -> float:
    if q.by == "contracts":
        return q.value * gate
    if q.by == "cover":
        return q.value * max(shares, 0.0) / m
    if q.by == "notional":
        return q.value * gate * equity / (spot * m)
    # collateral (Cboe PUT): (equity + n * m * price) * (1 + R) = n * m * K
    growth = math.exp(rate_coll * days / DAYS_PER_YEAR)
    per = m * (key.strike / growth - price)
    if not per > 0:
        raise DataError(
            f"{key.name()}: premium {price} is above the discounted strike; cannot size by "
            "collateral"
        )
    return q.value * gate * equity / per


def _hedge(cfg, st: _State, market, t: int) -> None:
    book, spot, day = st.book, market.close[t], market.dates[t]
    held = book.held()
    if not held:
        target = st.base_shares
    else:
        tau = np.array([_days_to(k.expiry, day) / DAYS_PER_YEAR for k in held])
        rate = market.rate if np.isfinite(market.rate) else 0.0
        d = deltas([k.cp for k in held], [k.strike for k in held],
                   [book.marks[k] for k in held], spot, tau, rate)  # fmt: skip
        d = np.where(np.isfinite(d), d, 0.0)
        exposure = sum(
            book.positions[k] * market.multiplier * x for k, x in zip(held, d, strict=True)
        )
        target = st.base_shares - exposure
    if abs(target - book.shares) > 1e-9:
        book.trade_shares(day, target - book.shares, spot, "delta_hedge")


def _trade_day(cfg, st: _State, market, t: int, gate: float, rate_coll: float) -> None:
    book, p = st.book, cfg.params
    day, spot = market.dates[t], market.close[t]
    if not np.isfinite(gate) or gate <= 0:
        if book.held():
            _close_options(cfg, st, market, t, "signal")
        if book.shares:
            book.trade_shares(day, -book.shares, spot, "signal")
        st.base_shares = 0.0
        return
    if p.roll.at == "days_before":
        due = [k for k in book.held() if _sessions_to(market, t, k.expiry) <= p.roll.days]
        if due:
            _close_options(cfg, st, market, t, "roll")
    if not book.held():
        _open_legs(cfg, st, market, t, gate, rate_coll)
    elif book.shares != st.base_shares and not p.delta_hedge:
        book.trade_shares(day, st.base_shares - book.shares, spot, "assignment_sale")


def run_options_backtest(
    cfg: BacktestConfig, market: OptionsMarket | None = None, *, runonce: bool = True
) -> BacktestResult:
    """Run ``cfg`` (with an ``options:`` section) session by session on the option book.

    ``runonce=False`` evaluates the gate bar by bar on growing prefixes of the inputs
    (:func:`engine.execution.instruments.bar_by_bar_weights`): same results for a causal,
    prefix-stable strategy."""
    if cfg.options is None:
        raise ConfigError(f"{cfg.name}: no options: section; use run_backtest")
    lag = end_of_day_lag(cfg)
    market = market or options_market(cfg)
    plan = cfg.plan
    weights = contract_decisions(plan, market.inputs, market.n_warmup, runonce=runonce)
    rate_coll = _collateral_rate(cfg, market)
    st = _State(OptionBook(cfg.options.terms(market.multiplier), cfg.execution.initial_cash))
    book = st.book
    rows = []
    for t, day in enumerate(market.dates):
        spot = market.close[t]
        if t > 0 and rate_coll:
            gap = (day - market.dates[t - 1]).days
            book.accrue(math.exp(rate_coll * gap / DAYS_PER_YEAR) - 1.0)
        expiring = [k for k in book.held() if k.expiry <= day]
        if expiring:
            settle = {
                k: market.open[t] if st.settle_style.get(k) == "AM" else spot for k in expiring
            }
            book.expire(day, settle)
        _mark(st, market, t)
        stop_today = st.stopped or _margin_call(cfg, st, market, t)
        if not stop_today and t >= lag:
            _trade_day(cfg, st, market, t, weights[t - lag, 0], rate_coll)
        _mark(st, market, t, count_stale=False)  # contracts traded today: at the day's mark
        if cfg.params.delta_hedge and not st.stopped and t >= lag and st.base_shares >= 0:
            _hedge(cfg, st, market, t)
        rows.append(
            {
                "date": day,
                "equity": book.equity(spot),
                "cash": book.cash,
                "underlying_value": book.shares * spot,
                "options_value": book.option_value(),
                "maintenance_margin": book.requirement(spot),
                "initial_margin": book.requirement(spot, cfg.options.broker_multiple),
                "short_contracts": float(-sum(n for n in book.positions.values() if n < 0)),
            }
        )
    return _result(cfg, market, weights, rows, st)


def _result(cfg, market: OptionsMarket, weights, rows, st: _State) -> BacktestResult:
    opt, book = cfg.options, st.book
    daily = pd.DataFrame(rows).set_index("date")
    equity = daily["equity"].rename("equity")
    returns = equity_returns(equity, cfg.execution.initial_cash)
    positions = pd.DataFrame(
        {
            cfg.params.underlying: daily["underlying_value"],
            "options": daily["options_value"],
            "cash": daily["cash"],
        }  # fmt: skip
    )
    trades = pd.DataFrame(
        book.trades,
        columns=[
            "date",
            "contract",
            "expiry",
            "cp",
            "strike",
            "size",
            "price",
            "fee",
            "reason",
            "price_source",
        ],  # fmt: skip
    )
    tx = trades.rename(columns={"contract": "symbol", "fee": "commission"})
    mult = np.where(tx["symbol"] == "underlying", 1.0, market.multiplier)
    tx["value"] = -tx["size"] * tx["price"] * mult
    holdings = pd.DataFrame(
        {
            cfg.params.underlying: daily["underlying_value"] / market.close,
            "short_contracts": daily["short_contracts"],
        }  # fmt: skip
    )
    scaled = tx.assign(size=tx["size"] * mult)
    metrics = performance_metrics(returns, positions, scaled, equity)
    statuses = pd.DataFrame(st.statuses, columns=["date", "leg", "status"])
    labels = sorted(set(trades.loc[trades["reason"] != "expired_worthless", "price_source"]))
    warm_metrics, warm_note = warmup_summary(market, weights)
    metrics.update(
        {
            **run_labels(
                cfg,
                market.source,
                fill=(
                    f"{opt.fill.price} (fills used: "
                    f"{', '.join(x for x in labels if x) or 'none'}; close fills "
                    f"{opt.fill.slippage:g} slippage), decided {cfg.execution.fill_label()}"
                ),
            ),
            "marks": market.mark_source,
            "instrument": f"{opt.chain} options ({opt.settlement} settlement)",
            "multiplier": market.multiplier,
            "contracts": opt.contracts,
            "fees_paid": finite_or_none(trades["fee"].sum()),
            "option_trades": int((trades["contract"] != "underlying").sum()),
            "expired_worthless": int((trades["reason"] == "expired_worthless").sum()),
            "cash_settlements": int((trades["reason"] == "cash_settlement").sum()),
            "assignments": len(book.assignments),
            "assignment_events": book.assignments,
            "stale_mark_days": st.stale,
            "model_mark_days": st.model_marks,
            "leg_status_days": {
                str(k): int(v) for k, v in statuses["status"].value_counts().items()
            },
            "leg_status_events": [
                f"{r.date:%Y-%m-%d} leg {r.leg}: {r.status}" for r in statuses.itertuples()
            ],
            "margin_rule": opt.margin,
            **margin_metrics(daily, st.events, st.margin_limited, st.stopped),
            **warm_metrics,
        }
    )
    return BacktestResult(
        config=cfg,
        equity=equity,
        returns=returns,
        positions=positions,
        holdings=holdings,
        transactions=tx,
        weights=pd.DataFrame(weights, index=market.dates, columns=list(cfg.plan.assets())),
        metrics=metrics,
        market_notes=(*market.notes, warm_note),
        margin=daily,
    )
