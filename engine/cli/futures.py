"""``run_backtest.py futures ...`` and ``run_backtest.py etn ...``: VIX futures curve and ETNs.

    run_backtest.py futures --contracts DIR --out OUT.csv [--continuous FILE] [--n 8]
                            [--plot-date 2017-02-23 --plot-date 2008-10-03] [--vix FILE]
    run_backtest.py etn --contracts DIR --index short_term|mid_term --kind long|inverse
                        --out OUT.csv [--continuous FILE] [--fee 0.0089] ...

``futures`` writes the daily curve (F1..Fn, expiries, business and calendar days to expiry, the
30-day constant-maturity future VXF30 and its weight w1) and, for each ``--plot-date``, a
term-structure plot. ``etn`` writes the simulated index (ER and TR) and the note. Both read the
per-contract CFE files of ``--contracts`` (validated by :mod:`data.cfe`: a bad file stops the
run with a message naming the file, line and fix, unless ``--on-problem warn``) and, with
``--continuous``, extend them with the continuous VX1..VX8 file.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from volbacktest.engine.calculators.futures import VXX_ANNUAL_FEE, XIV_ANNUAL_FEE
from volbacktest.engine.calculators.futures_curve import (
    FuturesCurve,
    constant_maturity,
    futures_curve,
    futures_index,
    simulate_etn,
)
from volbacktest.engine.errors import ConfigError, require_extra

log = logging.getLogger(__name__)

DEFAULT_FEES = {"long": VXX_ANNUAL_FEE, "inverse": XIV_ANNUAL_FEE}
DEFAULT_LEVERAGE = {"long": 1.0, "inverse": -1.0}


def _date(text: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(text).normalize()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{text!r} is not a date; write it as YYYY-MM-DD") from exc


def _leverage_change(text: str) -> tuple[str, float]:
    day, sep, value = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return f"{_date(day):%Y-%m-%d}", float(value)
    except ValueError as exc:
        raise ConfigError(
            f"--leverage-change {text!r}: write DATE:LEVERAGE, e.g. 2018-02-27:-0.5"
        ) from exc


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--contracts",
        type=Path,
        required=True,
        help="folder of per-contract CFE files CFE_<M><YY>_VX.csv",
    )
    p.add_argument(
        "--continuous",
        type=Path,
        help="continuous VX1..VX8 file (quantintell layout) to extend the curve after the files",
    )
    p.add_argument("--out", type=Path, required=True, help="CSV file to write")
    p.add_argument(
        "--on-problem",
        choices=("raise", "warn"),
        default="raise",
        help="a bad contract file (gap, zero settle, duplicate date) stops the run (default) "
        "or is reported as a warning; nothing is interpolated either way",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"run_backtest.py {command}", description=__doc__)
    _common(p)
    if command == "futures":
        p.add_argument("--n", type=int, default=8, help="contracts in the curve (F1..Fn)")
        p.add_argument(
            "--plot-date",
            action="append",
            default=[],
            type=_date,
            help="write a term-structure PNG for this date (repeatable)",
        )
        p.add_argument("--plot-out", type=Path, help="PNG path (default: OUT with _term.png)")
        p.add_argument("--vix", type=Path, help="Cboe VIX history file: spot VIX on the plots")
    else:
        p.add_argument("--index", choices=("short_term", "mid_term"), default="short_term")
        p.add_argument("--kind", choices=("long", "inverse"), default="long")
        p.add_argument("--fee", type=float, help="annual fee, decimals (0.89 %% long, 1.35 %%)")
        p.add_argument("--leverage", type=float, help="daily leverage (default +1 / -1)")
        p.add_argument(
            "--leverage-change",
            action="append",
            default=[],
            type=_leverage_change,
            help="DATE:LEVERAGE from that date on (e.g. SVXY 2018-02-27:-0.5); repeatable",
        )
        p.add_argument("--tbill-rate", type=float, default=0.0, help="91-day T-bill, decimals")
        p.add_argument(
            "--after-termination",
            choices=("nan", "flat"),
            default="nan",
            help="after an acceleration event (>= 80 %% fall in a day): empty or flat values",
        )
        p.add_argument(
            "--no-acceleration",
            action="store_true",
            help="a fund without the ETN's acceleration clause (e.g. SVXY)",
        )
        p.add_argument(
            "--start",
            default=None,
            help="first index date, or 'auto' (after the last date a held contract is "
            "unpriced; the default for mid_term)",
        )
    return p


def _settles(args):
    from volbacktest.data.cfe import (
        load_cfe_folder,
        matrix_sessions,
        sessions_for_years,
        splice_continuous,
    )
    from volbacktest.data.loaders import load_vix_futures_continuous

    contracts = load_cfe_folder(args.contracts, on_problem=args.on_problem)
    known = sum(p.acknowledged for p in contracts.problems)
    log.info("%s", contracts.report())
    matrix = contracts.matrix()
    if args.continuous is not None:
        cont = load_vix_futures_continuous(args.continuous)
        sessions = sessions_for_years(matrix.dates[0].year, cont.index[-1].year + 1)
        matrix = splice_continuous(matrix, cont, sessions)
    summary = (
        f"{len(contracts.contracts)} contract files, {len(contracts.problems)} problems "
        f"reported ({known} known issues; see --debug)"
    )
    return matrix, matrix_sessions(matrix), summary


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index_label="date", date_format="%Y-%m-%d", float_format="%.10g")


def curve_frame(curve: FuturesCurve, source: pd.Series) -> pd.DataFrame:
    """The ``futures`` subcommand's table: curve, VXF30 and its weight, and the data source."""
    cm = constant_maturity(curve)
    out = curve.to_frame()
    out.insert(0, "source", source.reindex(out.index))
    return out.assign(vxf30=cm.value, w1=cm.w1)


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (imported only when plotting)."""
    mpl = require_extra("matplotlib", "dev")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_term_structure(curve: FuturesCurve, dates, path: Path, vix: pd.Series | None = None):
    """Settle against calendar days to expiry for each date (spot VIX at 0 days if given)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for day in dates:
        ts = curve.on(day)
        x, y = ts["cdays_to_expiry"].to_list(), ts["settle"].to_list()
        label = f"{pd.Timestamp(day):%Y-%m-%d}"
        if vix is not None and pd.Timestamp(day) in vix.index:
            spot = float(vix.loc[pd.Timestamp(day)])
            x, y = [0.0, *x], [spot, *y]
            shape = "contango" if ts["settle"].iloc[0] > spot else "backwardation"
            label += f" ({shape}; VIX {spot:.2f})"
        ax.plot(x, y, marker="o", label=label)
    ax.set_xlabel("calendar days to expiry (0 = spot VIX)")
    ax.set_ylabel("settle (VIX points)")
    ax.set_title("VIX futures term structure")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _futures(args) -> int:
    matrix, sessions, summary = _settles(args)
    curve = futures_curve(matrix, sessions, n=args.n)
    frame = curve_frame(curve, matrix.source)
    _write(frame, args.out)
    lines = [f"{summary}", f"curve: {len(frame)} dates -> {args.out}"]
    if args.plot_date:
        vix = None
        if args.vix is not None:
            from volbacktest.data.loaders import load_cboe_index

            vix = load_cboe_index(args.vix)["close"]
        path = args.plot_out or args.out.with_name(args.out.stem + "_term.png")
        plot_term_structure(curve, args.plot_date, path, vix)
        lines.append(f"term structure ({', '.join(f'{d:%Y-%m-%d}' for d in args.plot_date)})")
        lines[-1] += f" -> {path}"
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _etn(args) -> int:
    matrix, sessions, summary = _settles(args)
    start = args.start
    if start is None and args.index == "mid_term":
        start = "auto"
    elif start not in (None, "auto"):
        start = _date(start)
    index = futures_index(matrix, sessions, args.index, tbill_rate=args.tbill_rate, start=start)
    fee = DEFAULT_FEES[args.kind] if args.fee is None else args.fee
    leverage = DEFAULT_LEVERAGE[args.kind] if args.leverage is None else args.leverage
    if (leverage > 0) != (args.kind == "long"):
        raise ConfigError(
            f"--kind {args.kind} with --leverage {leverage:g}: a long note needs leverage > 0, "
            "an inverse one < 0"
        )
    etn = simulate_etn(
        index,
        leverage=leverage,
        annual_fee=fee,
        leverage_changes=dict(args.leverage_change) or None,
        acceleration_drop=1.0 if args.no_acceleration else 0.8,
        after_termination=args.after_termination,
    )
    frame = pd.DataFrame(
        {
            "source": matrix.source.reindex(index.level_er.index),
            "index_er": index.level_er,
            "index_tr": index.level_tr,
            "index_return_er": index.return_er,
            "tbill_return": index.tbill_return,
            **{f"expiry_{c}": index.legs[c] for c in index.legs.columns},
            **{f"weight_{c}": index.weights[c] for c in index.weights.columns},
            "etn": etn.value,
            "etn_return": etn.daily_return,
            "leverage": etn.leverage,
            "active": etn.active,
        }
    )
    _write(frame, args.out)
    lines = [
        summary,
        *index.notes,
        f"{args.index} index and {args.kind} note (leverage {leverage:g}, fee {fee:.2%}/yr): "
        f"{len(frame)} dates {frame.index[0]:%Y-%m-%d}..{frame.index[-1]:%Y-%m-%d} -> {args.out}",
    ]
    if etn.terminated:
        lines.append(f"acceleration event on {etn.termination_date:%Y-%m-%d}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def main(argv: list[str]) -> int:
    """Entry point from ``engine.cli``: ``argv[0]`` is ``futures`` or ``etn``."""
    if not argv or argv[0] not in ("futures", "etn"):
        raise ConfigError("engine.futures_cli.main expects argv[0] to be 'futures' or 'etn'")
    command = argv[0]
    args = _parser(command).parse_args(argv[1:])
    return _futures(args) if command == "futures" else _etn(args)
