"""Benchmark: the 2004-2017 VIX futures curve and simulated ETNs from the 159 CFE contract files.

Target (issue 8): under 2 s. The engine path (data.cfe + engine.calculators.futures_curve):
read and validate every file, settle matrix, curve F1..F8 with expiries and days to expiry,
VXF30, the short-term index and simulated VXX and XIV. Printed beside a naive baseline
measured in the same run, written here the way blog code does it: one ``read_csv`` per file
with per-row date parsing, dictionaries of settles, then a Python loop over days for the curve,
the roll weights, the index and the notes. The two must agree (max differences printed), so
the baseline applies the same rules (known bad rows dropped, listed contracts only, incoming
contract's weight kept on the outgoing one until it has a price).

    python bench/bench_futures.py [--data PATH_TO_SHARED_DATA] [--repeat 3]

The first engine call in the process also builds the NYSE calendar (exchange_calendars, about
0.3 s); later calls reuse it. Python/pandas import time is excluded from every figure.
"""

from __future__ import annotations

import argparse
import bisect
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from volbacktest.data.calendars import nyse_sessions
from volbacktest.data.cfe import KNOWN_ISSUES, load_cfe_folder, matrix_sessions
from volbacktest.engine.calculators import futures as fut
from volbacktest.engine.calculators.futures_curve import (
    constant_maturity,
    futures_curve,
    futures_index,
    simulate_etn,
)

N_CURVE = 8
CFE_SCALE_DATE = pd.Timestamp("2007-03-26")


def engine_build(folder: Path) -> dict[str, pd.Series]:
    contracts = load_cfe_folder(folder)
    matrix = contracts.matrix()
    sessions = matrix_sessions(matrix)
    curve = futures_curve(matrix, sessions, n=N_CURVE)
    cm = constant_maturity(curve)
    index = futures_index(matrix, sessions, "short_term")
    vxx = simulate_etn(index, leverage=1.0, annual_fee=fut.VXX_ANNUAL_FEE)
    xiv = simulate_etn(index, leverage=-1.0, annual_fee=fut.XIV_ANNUAL_FEE)
    return {
        "f1": curve.f(1),
        "f8": curve.f(8),
        "vxf30": cm.value,
        "vxx": vxx.value,
        "xiv": xiv.value,
    }


def naive_build(folder: Path) -> dict[str, pd.Series]:
    bad = {
        (k.file, pd.Timestamp(d)) for k in KNOWN_ISSUES if k.kind == "bad_settle" for d in k.dates
    }
    settles: dict[pd.Timestamp, dict[pd.Timestamp, float]] = {}
    spans = {}
    files = sorted(folder.glob("CFE_*_VX.csv"))
    last_rows = {}
    for path in files:
        df = pd.read_csv(path, usecols=range(11))
        df["date"] = pd.to_datetime(df["Trade Date"], format="mixed")
        last_rows[path.name] = df["date"].max()
    folder_last = max(last_rows.values())
    sessions = list(nyse_sessions("2003-10-01", "2018-03-31"))
    for path in files:
        df = pd.read_csv(path, usecols=range(11))
        df["date"] = pd.to_datetime(df["Trade Date"], format="mixed")
        code = path.name[4]
        year, month = 2000 + int(path.name[5:7]), "FGHJKMNQUVXZ".index(code) + 1
        rule = fut.vix_futures_expiry(year, month, nyse_sessions("2003-10-01", "2018-03-31"))
        last = last_rows[path.name]
        expiry = last if (last < folder_last or last == rule) else rule
        prices, first = {}, None
        for _, row in df.iterrows():
            settle = row["Settle"] / (10.0 if row["date"] < CFE_SCALE_DATE else 1.0)
            if settle <= 0 or (path.name, row["date"]) in bad:
                continue
            prices[row["date"]] = settle
            first = row["date"] if first is None else first
        settles[expiry] = prices
        spans[expiry] = (first, last)
    dates = sorted({d for p in settles.values() for d in p})
    expiries = sorted(settles)
    # curve, day by day
    f1, f8, vxf30 = [], [], []
    for day in dates:
        alive = [e for e in expiries if spans[e][0] <= day <= spans[e][1] and e > day]
        price = [settles[e].get(day, np.nan) for e in alive[:N_CURVE]]
        f1.append(price[0])
        f8.append(price[7] if len(price) >= N_CURVE else np.nan)
        t1, t2 = (alive[0] - day).days, (alive[1] - day).days
        w1 = (t2 - 30) / (t2 - t1)
        vxf30.append(w1 * price[0] + (1 - w1) * price[1])
    # roll weights and index, day by day
    calendar = [pd.Timestamp("2004-03-17"), *expiries]  # the rule settlement before 2004-03-26
    roll_starts = [sessions[sessions.index(e) - 1] for e in calendar]
    held = []
    for i, day in enumerate(dates):
        period = bisect.bisect_right(roll_starts, day) - 1
        front, second = calendar[period + 1], calendar[period + 2]
        dt = sessions.index(front) - sessions.index(calendar[period])
        dr = sessions.index(front) - sessions.index(day) - 1
        w1 = dr / dt
        nxt = dates[i + 1] if i + 1 < len(dates) else None
        priced = day in settles[second] and (nxt is None or nxt in settles[second])
        held.append((front, second, w1 if priced else 1.0))
    level, vxx, xiv = [100.0], [100.0], [100.0]
    for i in range(1, len(dates)):
        front, second, w1 = held[i - 1]
        today, yday = dates[i], dates[i - 1]
        num = w1 * settles[front][today] + (1 - w1) * settles[second].get(today, 0.0)
        den = w1 * settles[front][yday] + (1 - w1) * settles[second].get(yday, 0.0)
        r = num / den - 1
        days = (today - yday).days
        level.append(level[-1] * (1 + r))
        vxx.append(vxx[-1] * (1 + r) * (1 - fut.VXX_ANNUAL_FEE * days / 365))
        xiv.append(xiv[-1] * (1 - r) * (1 - fut.XIV_ANNUAL_FEE * days / 365))
    idx = pd.DatetimeIndex(dates)
    return {
        "f1": pd.Series(f1, idx),
        "f8": pd.Series(f8, idx),
        "vxf30": pd.Series(vxf30, idx),
        "vxx": pd.Series(vxx, idx),
        "xiv": pd.Series(xiv, idx),
    }


def timed(fn, folder: Path, repeat: int) -> tuple[float, dict]:
    best, out = float("inf"), {}
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(folder)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    default = Path(
        os.environ.get("VOLBT_DATA_ROOT", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=default)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    folder = args.data / "vix_futures_cfe" / "per_contract"
    t_first, _ = timed(engine_build, folder, 1)  # first call: builds the NYSE calendar
    t_repeat, fast = timed(engine_build, folder, args.repeat)
    t_naive, slow = timed(naive_build, folder, 1)
    print(f"{'build (159 files, 2004-03-26..2017-03-08)':<48}{'seconds':>9}{'x naive':>9}")
    for label, t in (
        ("engine, first call (builds the NYSE calendar)", t_first),
        (f"engine, best of {args.repeat} (calendar cached)", t_repeat),
        ("naive per-file read + per-day loops", t_naive),
    ):
        print(f"{label:<48}{t:>9.3f}{t_naive / t:>9.1f}")
    print(f"target: engine under 2 s -> {'met' if max(t_first, t_repeat) < 2.0 else 'NOT met'}")
    print("max |engine - naive| (same rules):")
    for key in fast:
        a, b = fast[key], slow[key].reindex(fast[key].index)
        rel = np.nanmax(np.abs(a.to_numpy() / b.to_numpy() - 1.0))
        print(f"  {key:<6} relative {rel:.2e} over {len(a)} dates")


if __name__ == "__main__":
    main()
