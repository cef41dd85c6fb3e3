"""The fast path's simulation and metrics compiled with numba (optional extra ``fast``).

This module is the compiled form of :func:`engine.execution.vectorised.simulate` (the pure
numpy path, which stays the reference) and of the sweep metrics
(:func:`engine.sweep.metrics.grid_metrics`). It is imported only when numba is installed
(``pip install -e '.[fast]'``); ``vectorised.kernel_for`` picks it.

**The same arithmetic, run by run.** The numpy path advances every run of a chunk one
rebalance event at a time with array operations; here each run is one loop over its bars. Every
floating-point operation of the sizing rule (``execution.sizing.order_sizes``, ``order_legs``),
of backtrader's broker cash (``vectorised._execute``) and of the runner's ledger
(``vectorised._ledger``) is repeated in the same order, so the two paths agree bit for bit:

* numpy reduces rows of fewer than 8 terms left to right (its partial pairwise summation,
  documented under ``numpy.sum``'s notes, https://numpy.org/doc/stable/reference/generated/
  numpy.sum.html, unrolls blocks of 8; checked here on random rows of 3 to 10 terms), so the
  sums here are plain loops, and runs with 8 or more assets go to the numpy path;
* the equity before sizing is ``cash + holdings · prices``: where more than one product is
  non-zero the numpy path calls ``np.dot`` (BLAS may fuse multiply-adds), and so does this
  kernel, through ``numba.objmode``, so the bits are BLAS's in both;
* the ledger's cash and shares are cumulated per bar from the fills of that bar (what
  ``np.bincount`` then ``np.cumsum`` do), apart from the broker's own position, exactly as the
  runner rebuilds them.

``tests/test_fast_kernel.py`` holds the two paths equal (``assert_array_equal``) on
Hypothesis-drawn weights, costs, lots, leverage caps and fill modes, and the conformance tests
run both against the event-driven executor.

**Metrics.** :func:`grid_metrics_kernel` computes empyrical's definitions (the ones
``performance_metrics`` calls) in one pass per run. Sums run left to right where numpy sums
pairwise, so values differ from empyrical's in the last bits (tested to 1e-12 relative); a run
whose returns or equity hold a non-finite value is flagged and computed by the numpy path.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, objmode

from volbacktest.engine.execution.sizing import CASH_SAFETY, DUST_FRACTION

MAX_ASSETS = 7  # numpy sums 8 or more terms pairwise; such runs go to the numpy path


@njit(cache=True)
def _position_update(old, avg, size, price):
    """backtrader ``Position.update`` (``vectorised._position_update`` for one position)."""
    new = old + size
    flat_after = new == 0
    flat_before = old == 0
    opens = flat_before or (old > 0 and size > 0) or (old < 0 and size < 0)
    reduces = (old > 0 and new > 0) or (old < 0 and new < 0)
    if flat_after:
        return new, 0.0, 0.0, size
    if opens:
        grown_avg = price if flat_before else (avg * old + size * price) / new
        return new, grown_avg, size, 0.0
    if reduces:
        return new, avg, 0.0, size
    return new, price, new, -old


@njit(cache=True)
def _dot(n, p):
    """``float(n @ p)`` as numpy computes it (``sizing._row_dot``)."""
    k = n.shape[0]
    nonzero = 0
    total = 0.0
    for j in range(k):
        prod = n[j] * p[j]
        if prod != 0.0:
            nonzero += 1
        total = prod if j == 0 else total + prod
    if nonzero > 1:
        a = np.ascontiguousarray(n)
        b = np.ascontiguousarray(p)
        with objmode(total="float64"):
            total = float(a @ b)
    return total


@njit(cache=True)
def _order_sizes(w, held, cash, p, costs, lot, max_lev, delta):
    """``sizing.order_sizes`` for one run (``w`` with NaN read as 0; scaled in place)."""
    k = w.shape[0]
    g = 0.0
    for j in range(k):
        g = abs(w[j]) if j == 0 else g + abs(w[j])
    if g > max_lev:
        factor = max_lev / g
        for j in range(k):
            w[j] = w[j] * factor
    eq = cash + _dot(held, p)
    any_buy = False
    for j in range(k):
        d = w[j] * eq / p[j] - held[j]
        if lot:
            d = np.trunc(d / lot) * lot
        delta[j] = d
        any_buy = any_buy or d > 0
    if any_buy:
        _squeeze_buys(delta, cash, p, costs, lot)
    biggest = 0.0
    for j in range(k):
        biggest = max(biggest, abs(held[j]))
    tiny = DUST_FRACTION * max(1.0, biggest)
    for j in range(k):
        if not abs(delta[j]) > tiny:
            delta[j] = 0.0


@njit(cache=True)
def _squeeze_buys(delta, cash, p, costs, lot):
    """Scale every buy by one factor when their cost exceeds the cash left after the sells."""
    slip, comm_pct, per_share = costs
    sells = 0.0
    buys = 0.0
    n_sell = 0
    n_buy = 0
    for j in range(delta.shape[0]):
        if delta[j] > 0:
            term = delta[j] * (p[j] * (1.0 + slip) * (1.0 + comm_pct) + per_share)
            buys = term if n_buy == 0 else buys + term
            n_buy += 1
        else:
            term = -delta[j] * (p[j] * (1.0 - slip) * (1.0 - comm_pct) - per_share)
            sells = term if n_sell == 0 else sells + term
            n_sell += 1
    cash_after_sells = cash + sells
    if buys > cash_after_sells * CASH_SAFETY:
        room = cash_after_sells if cash_after_sells > 0.0 else 0.0
        scale = room * CASH_SAFETY / buys
        for j in range(delta.shape[0]):
            if delta[j] > 0:
                s = delta[j] * scale
                delta[j] = np.floor(s / lot) * lot if lot else s


@njit(cache=True)
def _execute(book, j, size, base, costs):
    """One market order on a run's broker ``book`` (``vectorised._execute``: backtrader's
    ``BackBroker._execute``). ``book``: cash, then (shares, average price) per asset. Returns
    the executed size (0: nothing), its price and commission, and whether the opening leg was
    rejected for lack of cash."""
    slip, comm_pct, per_share = costs
    if slip:
        price = base * (1 + slip) if size > 0 else base * (1 - slip)
    else:
        price = base
    unit_comm = price * comm_pct + per_share
    cash = book[0]
    old = book[1 + 2 * j]
    avg = book[2 + 2 * j]
    new, new_avg, opened, closed = _position_update(old, avg, size, price)
    closed_comm = abs(closed) * unit_comm
    if closed != 0:
        pnl = (-closed) * (price - avg) * 1.0
        closed_value = (-closed) * avg
        cash = ((cash + (closed_value + pnl)) - closed_comm) + 0.0
    opened_comm = abs(opened) * unit_comm
    after_open = (cash - opened * price) - opened_comm
    has_opened = opened != 0
    refused = has_opened and after_open < 0.0
    if has_opened and not refused:
        cash = after_open
    exec_size = size
    if refused or (has_opened and closed != 0):
        if refused:
            opened = 0.0
            opened_comm = 0.0
        exec_size = closed + opened
        new, new_avg, _o, _c = _position_update(old, avg, exec_size, price)
    book[0] = cash
    if exec_size == 0:
        return 0.0, 0.0, 0.0, refused
    book[1 + 2 * j] = new
    book[2 + 2 * j] = new_avg
    return (
        exec_size,
        (0.0 + exec_size * price) / exec_size,
        0.0 + (closed_comm + opened_comm),
        refused,
    )


@njit(cache=True)
def _rebalance(book, w, p, costs, lot, max_lev, scratch, log, n_fills, run, t, cell):
    """Size one run's rebalance, send its orders (sells first, then buys, in asset order; a
    trade crossing zero as a close then an open: ``sizing.order_legs``) and log the fills.
    ``cell``: the ledger's cash flow then each asset's shares traded on this bar."""
    k = w.shape[0]
    held, delta, first, second = scratch[0], scratch[1], scratch[2], scratch[3]
    for j in range(k):
        held[j] = book[1 + 2 * j]
    _order_sizes(w, held, book[0], p, costs, lot, max_lev, delta)
    for j in range(k):
        after = held[j] + delta[j]
        cross = held[j] != 0.0 and after != 0.0 and ((held[j] > 0) != (after > 0))
        first[j] = -held[j] if cross else delta[j]
        second[j] = after if cross else 0.0
    rejected = 0
    for phase in range(2):
        for j in range(k):
            d = delta[j]
            if d == 0.0 or (d > 0) != (phase == 1):
                continue
            for size in (first[j], second[j]):
                if size == 0.0:
                    break
                es, fp, fc, refused = _execute(book, j, size, p[j], costs)
                rejected += refused
                if es != 0:
                    if n_fills == log.shape[0]:
                        grown = np.empty((2 * log.shape[0], 6))
                        grown[:n_fills] = log
                        log = grown
                    log[n_fills, 0] = run
                    log[n_fills, 1] = t
                    log[n_fills, 2] = j
                    log[n_fills, 3] = es
                    log[n_fills, 4] = fp
                    log[n_fills, 5] = fc
                    n_fills += 1
                    cell[0] = cell[0] + (-es * fp - fc)  # the ledger's bincount, in fill order
                    cell[1 + j] = cell[1 + j] + es
    return rejected, log, n_fills


@njit(cache=True)
def _simulate(weights, fill_px, closes, timing, initial_cash, costs, lot, max_lev, keep):  # noqa: C901
    """Every run of ``weights`` ``(n_runs, n_bars, k)`` bar by bar: decisions, the broker, the
    runner's ledger, equity and returns. ``timing``: (fill lag, fills at the open, rebalance
    daily). The per-bar steps are written out here rather than called: a call passes its arrays
    with reference counting, which costs more than the step."""
    lag, next_open, daily = timing
    n_runs, n_bars, k = weights.shape
    last_fill_bar = n_bars - 1 if next_open else n_bars - 2
    equity = np.empty((n_runs, n_bars))
    returns = np.empty((n_runs, n_bars))
    gross = np.empty((n_runs, n_bars))
    hold = np.zeros((n_bars, n_runs, k) if keep else (0, 0, 0))
    cash_out = np.empty((n_runs, n_bars) if keep else (0, 0))
    counts = np.zeros((3, n_runs), dtype=np.int64)  # rebalances, rejected, unfilled at the end
    log = np.empty((1024, 6))
    n_fills = 0
    last_w = np.empty(k)
    w = np.empty(k)
    p = np.empty(k)
    scratch = np.empty((4, k))
    book = np.empty(1 + 2 * k)  # broker: cash, then (shares, average price) per asset
    shares = np.empty(k)  # the runner's ledger: shares cumulated from the fills
    cell = np.empty(1 + k)  # one bar's fills: cash flow, shares per asset
    for run in range(n_runs):
        book[:] = 0.0
        book[0] = initial_cash
        flow = 0.0  # the ledger's cumulated cash flow
        shares[:] = 0.0
        have_last = False
        for t in range(n_bars):
            # -- the decision whose fill bar is t: rebalance when its tuple changed (or daily)
            due = False
            row = t - lag
            if row >= 0:
                valid = False
                for j in range(k):
                    x = weights[run, row, j]
                    valid = valid or x == x
                    w[j] = x if x == x else 0.0
                if valid:
                    trigger = daily or not have_last
                    for j in range(k):
                        trigger = trigger or w[j] != last_w[j]
                        last_w[j] = w[j]
                    have_last = True
                    if trigger:
                        if t == n_bars - 1 and not next_open:
                            counts[2, run] = 1
                        if t <= last_fill_bar:
                            counts[0, run] += 1
                            due = True
            if due:
                for j in range(k + 1):
                    cell[j] = 0.0
                for j in range(k):
                    p[j] = fill_px[t, j]
                rej, log, n_fills = _rebalance(
                    book, w, p, costs, lot, max_lev, scratch, log, n_fills, run, t, cell
                )
                counts[1, run] += rej
                # -- the ledger (vectorised._ledger: np.cumsum of per-bar np.bincount sums; a
                # bar without fills adds +0.0, which changes nothing: the sums are never -0.0)
                flow = flow + cell[0]
                for j in range(k):
                    shares[j] = shares[j] + cell[1 + j]
            c = initial_cash + flow
            e = c
            g = 0.0
            for j in range(k):
                v = shares[j] * closes[t, j]
                e = e + v
                g = g + abs(v)
                if keep:
                    hold[t, run, j] = shares[j]
            equity[run, t] = e
            gross[run, t] = g
            if keep:
                cash_out[run, t] = c
            returns[run, t] = (e / initial_cash if t == 0 else e / equity[run, t - 1]) - 1.0
    return equity, returns, gross, log[:n_fills].copy(), counts, hold, cash_out


def simulate_compiled(weights, fill_px, closes, ex, keep: bool):
    """Run the compiled simulation (arguments as ``vectorised.simulate`` prepares them):
    equity, returns, gross exposure ``(n_runs, n_bars)``, the fills ``(n_fills, 6)`` (run, bar,
    asset, size, price, commission), counts ``(3, n_runs)`` (rebalances, rejected opening legs,
    a target left unfilled at the end), holdings and ledger cash when ``keep``."""
    costs = (
        float(ex.slippage.percent),
        float(ex.commission.percent),
        float(ex.commission.per_share),
    )
    return _simulate(
        weights,
        np.ascontiguousarray(fill_px, dtype=np.float64),
        np.ascontiguousarray(closes, dtype=np.float64),
        (int(ex.fill.lag), bool(ex.fill.uses_open), ex.rebalance == "daily"),
        float(ex.initial_cash),
        costs,
        float(ex.integer_lot or 0),
        float(ex.max_gross_leverage),
        bool(keep),
    )


# --------------------------------------------------------------------------- metrics
@njit(cache=True)
def grid_metrics_kernel(returns, equity, gross, fill_run, fill_size, fill_price, periods):
    """empyrical's daily metrics (rf = 0) and the runner's trading statistics of every run.

    ``returns``, ``equity``, ``gross``: ``(n_runs, n_bars)``; fills as flat arrays. Returns a
    ``(12, n_runs)`` array (rows: ``sweep.metrics.METRIC_NAMES`` but ``rebalances``) and a
    ``(n_runs,)`` flag of runs left to the numpy path (a non-finite return or equity)."""
    n_runs, n = returns.shape
    out = np.full((12, n_runs), np.nan)
    fallback = np.zeros(n_runs, dtype=np.bool_)
    traded = np.zeros(n_runs)
    trades = np.zeros(n_runs)
    for i in range(fill_run.shape[0]):
        traded[fill_run[i]] += abs(fill_size[i]) * fill_price[i]
        trades[fill_run[i]] += 1.0
    for run in range(n_runs):
        out[8, run] = trades[run]
        fallback[run] = n < 2 or not _run_metrics(
            returns[run], equity[run], gross[run], traded[run], periods, out[:, run]
        )
    return out, fallback


@njit(cache=True)
def _run_metrics(r, eq, gross, traded, periods, out):
    """One run's metrics into ``out`` (see :func:`grid_metrics_kernel`); False when a value of
    ``r`` or ``eq`` is not finite (nothing written but the trade count)."""
    n = r.shape[0]
    total = 0.0
    prod = 1.0
    down = 0.0
    rmax = -np.inf
    rmin = np.inf
    wealth = 100.0  # empyrical's drawdown series starts from 100
    peak = 100.0
    worst = 0.0
    eq_sum = 0.0
    expo = 0.0
    n_expo = 0
    in_market = 0
    for t in range(n):
        x = r[t]
        if not (math.isfinite(x) and math.isfinite(eq[t])):
            return False
        total += x
        prod *= x + 1.0
        down += x * x if x < 0.0 else 0.0
        rmax = max(rmax, x)
        rmin = min(rmin, x)
        wealth *= x + 1.0
        peak = max(peak, wealth)
        worst = min(worst, (wealth - peak) / peak)
        eq_sum += eq[t]
        in_market += gross[t] > 0.0
        if eq[t] != 0.0:  # gross / equity with inf read as NaN, then nanmean
            expo += gross[t] / eq[t]
            n_expo += 1
    mean = total / n
    ss = 0.0
    for t in range(n):
        ss += (r[t] - mean) * (r[t] - mean)
    std = math.sqrt(ss / (n - 1))
    ann = math.sqrt(periods)
    years = n / periods
    cagr = prod ** (1.0 / years) - 1.0
    out[0] = cagr
    out[1] = std * ann
    out[2] = _ratio(mean, 0.0 if rmax == rmin else std) * ann  # empyrical: constant → std 0
    out[3] = _ratio(mean * periods, math.sqrt(down / n) * ann)
    out[4] = worst
    calmar = cagr / abs(worst) if worst < 0.0 else np.nan
    out[5] = calmar if math.isfinite(calmar) else np.nan
    out[6] = eq[n - 1] / eq[0] * (1.0 + r[0]) - 1.0
    out[7] = _ratio(_ratio(traded, eq_sum / n), years)
    out[9] = expo / n_expo if n_expo else np.nan
    out[10] = eq[n - 1]
    out[11] = in_market / n
    return True


@njit(cache=True)
def _ratio(a, b):
    """``a / b`` with numpy's IEEE results for a zero ``b`` (inf or NaN, no exception)."""
    if b == 0.0:
        if a == 0.0 or a != a:
            return np.nan
        return np.inf if (a > 0) == (math.copysign(1.0, b) > 0) else -np.inf
    return a / b
