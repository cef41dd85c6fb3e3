"""``volbacktest futures ...`` and ``volbacktest etn ...``: VIX futures curve and ETNs.

``futures`` writes the daily curve (F1..Fn, expiries, business and calendar days to expiry, the
30-day constant-maturity future VXF30 and its weight w1) and, for each ``--plot-date``, a
term-structure plot. ``etn`` writes the simulated index (ER and TR) and the note. Both read the
per-contract CFE files of ``--contracts`` (validated by :mod:`data.cfe`: a bad file stops the
run with a message naming the file, line and fix, unless ``--on-problem warn``) and, with
``--continuous``, extend them with the continuous VX1..VX8 file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from volbacktest.engine.errors import ConfigError

from .common import add_command, add_overwrite, positive_int

if TYPE_CHECKING:
    import pandas as pd

    from volbacktest.engine.calculators.futures_curve import FuturesCurve

log = logging.getLogger(__name__)

DEFAULT_LEVERAGE = {"long": 1.0, "inverse": -1.0}

FUTURES_DESCRIPTION = """\
Write the daily VIX futures curve (F1..Fn, expiries, business and calendar days to expiry, the
30-day constant-maturity future VXF30 and its weight w1) and, for each --plot-date, a
term-structure plot.
"""

ETN_DESCRIPTION = """\
Write a simulated S&P VIX futures index (short_term or mid_term; excess and total return) and
a long or inverse note on it (VXX-, XIV- or VXZ-like), with fee, leverage and the acceleration
clause.
"""

COMMON = """\
Reads the per-contract CFE files of --contracts (validated: a bad file stops the run with a
message naming the file, line and fix, unless --on-problem warn) and, with --continuous,
extends them with the continuous VX1..VX8 file."""

FUTURES_EXAMPLE = """
D=../shared/data
volbacktest futures --contracts $D/vix_futures_cfe/per_contract --out curve.csv \\
    --plot-date 2017-02-23 --plot-date 2008-10-03 --vix $D/cboe_vix_index/VIX_History.csv
"""

ETN_EXAMPLE = """
D=../shared/data
volbacktest etn --contracts $D/vix_futures_cfe/per_contract --index short_term --kind long \\
    --out vxx_sim.csv
volbacktest etn --contracts $D/vix_futures_cfe/per_contract --kind inverse --out xiv_sim.csv \\
    --continuous $D/vix_futures_continuous/vix_futures_VX1-VX8_with_VIX_SP500__quantintell.csv
"""


def default_fees() -> dict[str, float]:
    """Annual fee of a note by kind: VXX's for long, XIV's for inverse."""
    from volbacktest.engine.calculators.futures import VXX_ANNUAL_FEE, XIV_ANNUAL_FEE

    return {"long": VXX_ANNUAL_FEE, "inverse": XIV_ANNUAL_FEE}


def _date(text: str) -> pd.Timestamp:
    import pandas as pd

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


def _common(p) -> None:
    p.add_argument(
        "--contracts",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder of per-contract CFE files CFE_<M><YY>_VX.csv",
    )
    p.add_argument(
        "--continuous",
        type=Path,
        metavar="FILE",
        help="continuous VX1..VX8 file (quantintell layout) to extend the curve after the files",
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="CSV file to write")
    p.add_argument(
        "--on-problem",
        choices=("raise", "warn"),
        default="raise",
        help="a bad contract file (gap, zero settle, duplicate date) stops the run (default) "
        "or is reported as a warning; nothing is interpolated either way",
    )
    add_overwrite(p, "output file")


def add_parser(subparsers, parents) -> None:
    """The ``futures`` and ``etn`` subcommands."""
    p = add_command(
        subparsers,
        "futures",
        parents,
        summary="VIX futures curve (F1..Fn, VXF30) and term-structure plots",
        description=FUTURES_DESCRIPTION + COMMON,
        example=FUTURES_EXAMPLE,
    )
    _common(p)
    p.add_argument(
        "--n",
        type=positive_int,
        default=8,
        metavar="N",
        help="contracts in the curve, F1..FN (default 8)",
    )
    p.add_argument(
        "--plot-date",
        action="append",
        default=[],
        type=_date,
        metavar="DATE",
        help="write a term-structure PNG for this date (repeatable)",
    )
    p.add_argument(
        "--plot-out", type=Path, metavar="FILE", help="PNG path (default: OUT with _term.png)"
    )
    p.add_argument(
        "--vix", type=Path, metavar="FILE", help="Cboe VIX history file: spot VIX on the plots"
    )
    p.set_defaults(handler=_futures)

    p = add_command(
        subparsers,
        "etn",
        parents,
        summary="simulate a VIX futures index and a long or inverse ETN on it",
        description=ETN_DESCRIPTION + COMMON,
        example=ETN_EXAMPLE,
    )
    _common(p)
    p.add_argument(
        "--index",
        choices=("short_term", "mid_term"),
        default="short_term",
        help="futures index: short_term (months 1-2, VXX) or mid_term (months 4-7, VXZ); "
        "default short_term",
    )
    p.add_argument(
        "--kind",
        choices=("long", "inverse"),
        default="long",
        help="note on the index: long (+1x) or inverse (-1x); default long",
    )
    p.add_argument(
        "--fee",
        type=float,
        help="annual fee, decimals (default 0.0089 long, 0.0135 inverse)",
    )
    p.add_argument("--leverage", type=float, help="daily leverage (default +1 long, -1 inverse)")
    p.add_argument(
        "--leverage-change",
        action="append",
        default=[],
        type=_leverage_change,
        metavar="DATE:LEVERAGE",
        help="leverage from that date on (e.g. SVXY 2018-02-27:-0.5); repeatable",
    )
    p.add_argument(
        "--tbill-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="91-day T-bill rate, decimals, for the total-return index (default 0)",
    )
    p.add_argument(
        "--after-termination",
        choices=("nan", "flat"),
        default="nan",
        help="after an acceleration event (>= 80 %% fall in a day): empty (default) or flat values",
    )
    p.add_argument(
        "--no-acceleration",
        action="store_true",
        help="a fund without the ETN's acceleration clause (e.g. SVXY)",
    )
    p.add_argument(
        "--start",
        default=None,
        metavar="DATE",
        help="first index date, or 'auto' (after the last date a held contract is "
        "unpriced; the default for mid_term)",
    )
    p.set_defaults(handler=_etn)


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
        f"reported ({known} known issues; -v lists them)"
    )
    return matrix, matrix_sessions(matrix), summary


def _write(frame: pd.DataFrame, path: Path) -> None:
    from volbacktest.engine.run.outputs import atomic_file

    with atomic_file(path) as tmp:
        frame.to_csv(tmp, index_label="date", date_format="%Y-%m-%d", float_format="%.10g")


def _check_outputs(args, *paths: tuple[str, Path | None]) -> None:
    """Every output file checked before the contract files are read."""
    from volbacktest.engine.run.outputs import check_output_file

    for flag, path in paths:
        if path is not None:
            check_output_file(path, flag, overwrite=args.overwrite)


def curve_frame(curve: FuturesCurve, source: pd.Series) -> pd.DataFrame:
    """The ``futures`` subcommand's table: curve, VXF30 and its weight, and the data source."""
    from volbacktest.engine.calculators.futures_curve import constant_maturity

    cm = constant_maturity(curve)
    out = curve.to_frame()
    out.insert(0, "source", source.reindex(out.index))
    return out.assign(vxf30=cm.value, w1=cm.w1)


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (``run.report.pyplot``, imported when
    plotting: the command line stays light for ``--help``)."""
    from volbacktest.engine.run.report import pyplot as headless

    return headless()


def plot_term_structure(curve: FuturesCurve, dates, path: Path, vix: pd.Series | None = None):
    """Settle against calendar days to expiry for each date (spot VIX at 0 days if given)."""
    import pandas as pd

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
    from volbacktest.engine.run.outputs import atomic_file

    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def _plot_path(args) -> Path:
    return args.plot_out or args.out.with_name(args.out.stem + "_term.png")


def _futures(args) -> int:
    from volbacktest.engine.calculators.futures_curve import futures_curve

    _check_outputs(
        args, ("--out", args.out), ("--plot-out", _plot_path(args) if args.plot_date else None)
    )
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
        path = _plot_path(args)
        plot_term_structure(curve, args.plot_date, path, vix)
        lines.append(f"term structure ({', '.join(f'{d:%Y-%m-%d}' for d in args.plot_date)})")
        lines[-1] += f" -> {path}"
    print("\n".join(lines))
    return 0


def _etn(args) -> int:
    import pandas as pd

    from volbacktest.engine.calculators.futures_curve import futures_index, simulate_etn

    # arguments and the output first: nothing is read before they are known to be usable
    start = args.start
    if start is None and args.index == "mid_term":
        start = "auto"
    elif start not in (None, "auto"):
        start = _date(start)
    fee = default_fees()[args.kind] if args.fee is None else args.fee
    leverage = DEFAULT_LEVERAGE[args.kind] if args.leverage is None else args.leverage
    if (leverage > 0) != (args.kind == "long"):
        raise ConfigError(
            f"--kind {args.kind} with --leverage {leverage:g}: a long note needs leverage > 0, "
            "an inverse one < 0"
        )
    _check_outputs(args, ("--out", args.out))
    matrix, sessions, summary = _settles(args)
    index = futures_index(matrix, sessions, args.index, tbill_rate=args.tbill_rate, start=start)
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
    print("\n".join(lines))
    return 0
