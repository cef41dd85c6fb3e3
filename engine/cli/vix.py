"""``volbacktest vix``: a VIX / iVIX history from an option-chain file.

    volbacktest vix --preset sse_ivix \\
        --chains ../shared/data/china_50etf/50etf_options_daily_joinquant__TanTzs.csv \\
        --underlying ../shared/data/china_50etf/510050_daily_unadjusted__zsh-a.csv \\
        --rates ../shared/data/china_50etf/shibor__Alexdachen.csv --carry-rates \\
        --out results/vix/ivix.csv
    volbacktest vix --preset cboe --set max_next_days=null \\
        --chains ../shared/data/us_option_chains/SPX-Options-24jan2011.csv --rate 0.0012 \\
        --out results/vix/spx.csv

Writes one row per trade date: ``date, vix30, vix60, status, status60`` (``ok`` or why the date
has no value), the underlying close when known, and the per-term diagnostics of the near, next
and third terms (expiry, days, tau_years, rate_cc, forward, k0, n_strikes, k_low, k_high,
sigma2, status); ``--terms FILE`` also writes every (date, expiry) term and
``--policy-report FILE`` what the chain policy and the preset's adjusted-contract rule dropped
and kept per year.

Chain formats (``--format``, detected from the file when ``auto``): ``50etf`` (JoinQuant 50ETF
closes, ``data.chains.load_50etf_options``; ``--underlying`` the 510050 file, ``--contracts``
the contract list), ``gs`` (GS vendor file), ``spx_table`` (Cboe delayed quote table; its quote
time is the valuation time), ``csv`` (the engine's long chain schema) and ``parquet`` (a folder
written by ``data.chains.write_partitioned``, computed partition by partition). Rates: a SHIBOR
file (``--rates``, cubic spline per expiry) or a constant continuously compounded decimal
(``--rate``); ``--carry-rates`` carries the last SHIBOR curve past the file's end (the shared
file ends 2018-07-13). ``--set field=value`` overrides any ``VixMethod`` field, e.g.
``--set min_near_days=1`` (the seed's 1-day roll).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from volbacktest.engine.errors import ConfigError, DataError, DataNotFoundError

from .common import add_command, add_overwrite

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

FORMATS = ("auto", "50etf", "gs", "spx_table", "csv", "parquet")

DESCRIPTION = """\
VIX / iVIX history from a whole option-chain file: one row per trade date with vix30, vix60,
status (ok, or why the date has no value), the underlying close when known and the per-term
diagnostics of the near, next and third terms; --terms also writes every (date, expiry) term.

chain formats (--format, detected from the file when auto):
  50etf      JoinQuant 50ETF closes (--underlying the 510050 file, --contracts the contract list)
  gs         GS vendor file
  spx_table  Cboe delayed quote table (its quote time is the valuation time)
  csv        the engine's long chain schema (trade_date, expiry, cp, strike, ...)
  parquet    a folder written by data.chains.write_partitioned (computed partition by partition)
rates: a SHIBOR file (--rates, cubic spline per expiry) or a constant --rate."""

EXAMPLE = """
D=../shared/data/china_50etf
volbacktest vix --preset sse_ivix --chains $D/50etf_options_daily_joinquant__TanTzs.csv \\
    --underlying $D/510050_daily_unadjusted__zsh-a.csv --rates $D/shibor__Alexdachen.csv \\
    --carry-rates --out results/vix/ivix.csv
volbacktest vix --preset cboe --rate 0.0012 --set max_next_days=null --out results/vix/spx.csv \\
    --chains ../shared/data/us_option_chains/SPX-Options-24jan2011.csv
"""


def add_parser(subparsers, parents) -> None:
    p = add_command(
        subparsers,
        "vix",
        parents,
        summary="compute a VIX / iVIX history from an option-chain file",
        description=DESCRIPTION,
        example=EXAMPLE,
    )
    p.add_argument(
        "--preset",
        default="sse_ivix",
        metavar="NAME",
        help="VIX method preset: cboe, cboe_2009 or sse_ivix (default: %(default)s)",
    )
    p.add_argument(
        "--chains", required=True, type=Path, metavar="PATH", help="option-chain file or folder"
    )
    p.add_argument(
        "--format",
        default="auto",
        choices=FORMATS,
        help="chain file layout (default: detected from the file)",
    )
    p.add_argument(
        "--underlying",
        type=Path,
        metavar="FILE",
        help="underlying closes (a date column first, and a close column)",
    )
    p.add_argument(
        "--contracts", type=Path, metavar="FILE", help="50ETF contract list (50etf format only)"
    )
    rates = p.add_mutually_exclusive_group()
    rates.add_argument(
        "--rates", type=Path, metavar="FILE", help="SHIBOR file (percent, tenors ON..1Y)"
    )
    rates.add_argument(
        "--rate", type=float, help="constant continuously compounded rate, decimal (0.02)"
    )
    p.add_argument(
        "--carry-rates",
        action="store_true",
        help="carry the last SHIBOR curve past the file's end (the shared file ends 2018-07-13)",
    )
    p.add_argument(
        "--bad-quotes",
        choices=("stop", "drop", "warn"),
        default="stop",
        help="chain rows with a crossed quote, a negative price or an expiry before the trade "
        "date: stop with an error naming them (default), drop them (counted in a warning) or "
        "keep them with a warning",
    )
    p.add_argument("--start", metavar="DATE", help="first trade date (YYYY-MM-DD)")
    p.add_argument("--end", metavar="DATE", help="last trade date (YYYY-MM-DD)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a VixMethod field, e.g. --set min_near_days=1 (repeatable)",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="output CSV (default: results/vix/<chains file name>_<preset>.csv)",
    )
    p.add_argument(
        "--terms", type=Path, metavar="FILE", help="also write every (date, expiry) term here"
    )
    add_overwrite(p, "output file")
    p.add_argument(
        "--policy-report",
        type=Path,
        metavar="FILE",
        help="also write, per year, the rows the chain policy and the adjusted-contract rule "
        "dropped and kept (CSV)",
    )
    p.set_defaults(handler=run)


def default_out(args) -> Path:
    """``results/vix/<chains name>_<preset>.csv``: outputs stay under ``results/`` (ignored by
    git), not in the working tree."""
    return Path("results") / "vix" / f"{Path(args.chains).stem}_{args.preset}.csv"


def detect_format(path: Path) -> str:
    """The chain layout of ``path`` from its first lines (``parquet`` for a folder)."""
    if path.is_dir():
        return "parquet"
    if not path.is_file():
        raise DataNotFoundError(f"--chains {path}: no such file or folder")
    with path.open(encoding="utf-8", errors="replace") as fh:
        head = [fh.readline() for _ in range(3)]
    first = head[0]
    if "交易日期" in first:
        return "50etf"
    if "DataDate" in first and "OptionSymbol" in first:
        return "gs"
    if len(head) > 2 and "Calls" in head[2] and "Puts" in head[2]:
        return "spx_table"
    columns = {c.strip() for c in first.strip().split(",")}
    if {"trade_date", "expiry", "cp", "strike"} <= columns:
        return "csv"
    raise DataError(
        f"--chains {path}: layout not recognised (first line {first.strip()[:80]!r}); pass "
        f"--format one of {', '.join(FORMATS[1:])}"
    )


def _parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write FIELD=VALUE, e.g. --set min_near_days=1")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _read_csv_chain(path: Path, policy) -> pd.DataFrame:
    """A chain in the engine's long schema, checked and cleaned as the vendor loaders are."""
    import pandas as pd

    from volbacktest.data.chains import (
        NUMERIC_COLUMNS,
        apply_policy,
        numeric_column,
        validate_chain,
    )
    from volbacktest.data.loaders import read_csv_checked

    chain = read_csv_checked(path)
    for c in ("trade_date", "expiry"):
        parsed = pd.to_datetime(chain[c], errors="coerce", format="mixed")
        if parsed.isna().any():
            i = int(parsed.isna().to_numpy().argmax())
            raise DataError(
                f"{path}: line {i + 2} column {c!r} holds {chain[c].iloc[i]!r}, not a date; "
                "write dates as YYYY-MM-DD"
            )
        chain[c] = parsed.dt.normalize().astype("datetime64[ns]")
    for c in ("strike", *NUMERIC_COLUMNS):
        if c in chain.columns:
            chain[c] = numeric_column(chain[c], path, c)
    return apply_policy(chain, validate_chain(chain, source=str(path)), policy=policy)


def _underlying_closes(path: Path) -> pd.Series:
    """Closes by date from a CSV whose first column is the date and which has ``close``."""
    import pandas as pd

    from volbacktest.data.chains import numeric_column
    from volbacktest.data.loaders import read_csv_checked

    frame = read_csv_checked(path)
    if "close" not in frame.columns:
        raise DataError(f"--underlying {path}: no 'close' column (found {list(frame.columns)})")
    dates = pd.to_datetime(frame.iloc[:, 0], errors="coerce")
    if dates.isna().any():
        i = int(dates.isna().to_numpy().argmax())
        raise DataError(
            f"--underlying {path}: line {i + 2} has no date in the first column "
            f"({frame.iloc[i, 0]!r}); write dates as YYYY-MM-DD"
        )
    closes = numeric_column(frame["close"], path, "close")
    return pd.Series(closes, index=pd.DatetimeIndex(dates).normalize())


def check_inputs(args) -> None:
    """Every input file named on the command line exists, reported by its flag (before any
    work: a missing --underlying is not "chain file not found")."""
    for flag, path, folder_ok in (
        ("--chains", args.chains, True),
        ("--underlying", args.underlying, False),
        ("--contracts", args.contracts, False),
        ("--rates", args.rates, False),
    ):
        if path is None:
            continue
        path = Path(path)
        if path.is_dir() and not folder_ok:
            raise DataNotFoundError(f"{flag} {path} is a folder; give the file")
        if not path.exists():
            raise DataNotFoundError(
                f"{flag} {path}: no such file; check the path (relative to {Path.cwd()})"
            )


def load_chain_file(args, fmt: str) -> tuple[pd.DataFrame, object]:
    """(chain, valuation_time) for a file layout (not ``parquet``); valuation None = the
    preset's clock time on each date."""
    from volbacktest.data import chains

    if args.contracts is not None and fmt != "50etf":
        raise ConfigError("--contracts applies to the 50etf format only")
    valuation = None
    policy = chains.ChainPolicy(bad_quotes=getattr(args, "bad_quotes", "stop"))
    if fmt == "50etf":
        chain = chains.load_50etf_options(args.chains, args.underlying, args.contracts, policy)
    elif fmt == "gs":
        chain = chains.load_gs_options(args.chains, policy)
    elif fmt == "spx_table":
        chain = chains.load_spx_quote_table(args.chains, policy)
        valuation = chain.attrs.get("quote_time")
    else:
        chain = _read_csv_chain(args.chains, policy)
    if args.underlying is not None and fmt != "50etf":
        closes = _underlying_closes(args.underlying)
        chain = chain.assign(underlying=closes.reindex(chain["trade_date"]).to_numpy())
    return chain, valuation


def _rates(args):
    if args.rates is not None:
        from volbacktest.data.rates import load_shibor

        return load_shibor(args.rates)
    if args.rate is not None:
        return float(args.rate)
    raise ConfigError(
        "no rates given: pass --rates SHIBOR.csv (e.g. ../shared/data/china_50etf/"
        "shibor__Alexdachen.csv) or a constant --rate 0.02 (continuously compounded decimal)"
    )


def compute(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-date table, per-term table) for parsed arguments."""
    import pandas as pd

    from volbacktest.engine.calculators.vix import compute_vix, get_method

    overrides = _parse_overrides(args.overrides)
    if args.carry_rates:
        overrides["rate_max_stale_days"] = None
    method = get_method(args.preset, **overrides)
    rates = _rates(args)
    fmt = detect_format(args.chains) if args.format == "auto" else args.format
    if fmt == "parquet":  # partition by partition: the history never sits in memory
        from volbacktest.data.vix_history import compute_vix_partitioned

        res = compute_vix_partitioned(args.chains, method, rates, start=args.start, end=args.end)
        table = res.index.copy()
        table.index.name = "date"
        return table, res.terms
    chain, valuation = load_chain_file(args, fmt)
    if args.start:
        chain = chain.loc[chain["trade_date"] >= pd.Timestamp(args.start)]
    if args.end:
        chain = chain.loc[chain["trade_date"] <= pd.Timestamp(args.end)]
    if chain.empty:
        raise DataError(f"{args.chains}: no chain rows between {args.start} and {args.end}")
    try:
        res = compute_vix(chain, method, rates, valuation_time=valuation)
    except DataError as exc:
        message = str(exc)
        if str(args.chains) not in message:
            message = f"{args.chains}: {message}"
        raise DataError(_command_line_fix(message)) from None
    table = res.index.copy()
    if "underlying" in chain.columns:
        spot = chain.groupby("trade_date")["underlying"].first()
        table.insert(4, "underlying", spot.reindex(table.index).to_numpy())
    table.index.name = "date"
    table.attrs["policy_report"] = _policy_report(chain, res)
    return table, res.terms


def _command_line_fix(message: str) -> str:
    """A calculator's message with the command line's way to apply its fix (its own names a
    Python call)."""
    if "SHIBOR" in message and "stale" in message:
        return f"{message} (command line: --carry-rates, or --end before the rates end)"
    if "bid > ask" in message or "crossed" in message:
        return f"{message} (command line: --bad-quotes drop)"
    if "duplicate" in message and "apply_policy" in message:
        return f"{message} (command line: the loaders merge duplicates; check --format)"
    return message


def _policy_report(chain, res) -> list[dict]:
    """Per year: the loader's policy counts beside the method's adjusted-contract counts."""
    from volbacktest.data.chains import policy_report

    loader = policy_report(chain)
    method = res.dropped_by_year
    if method.empty:
        both = loader
    else:
        span = ["first", "last", "rows"]
        extra = method.drop(columns=span).add_prefix(f"{res.method.name} ")
        # years the index was computed for (the loader reads the whole file; the loader's
        # counts are of its whole years)
        both = (method[span] if loader.empty else loader).join(extra, how="inner")
    return both.reset_index().to_dict("records") if not both.empty else []


def _check_outputs(args) -> None:
    """Every output file is writable (and new, unless --overwrite) and no two are the same."""
    from volbacktest.engine.run.outputs import check_output_file

    seen: dict[Path, str] = {}
    for flag, path in (("--out", args.out), ("--terms", args.terms)) + (
        ("--policy-report", args.policy_report),
    ):
        if path is None:
            continue
        key = Path(path).resolve()
        if key in seen:
            raise ConfigError(f"{flag} {path} is the {seen[key]} file; give another file")
        seen[key] = flag
        check_output_file(path, flag, overwrite=args.overwrite)


def run(args) -> int:
    from volbacktest.engine.run.outputs import atomic_file

    if args.out is None:
        args.out = default_out(args)
    _check_outputs(args)  # before any work
    check_inputs(args)
    table, terms = compute(args)
    with atomic_file(args.out) as tmp:
        table.to_csv(tmp, date_format="%Y-%m-%d")
    if args.terms is not None:
        with atomic_file(args.terms) as tmp:
            terms.to_csv(tmp, index=False, date_format="%Y-%m-%d")
    report = table.attrs.get("policy_report", [])
    if args.policy_report is not None:
        import pandas as pd

        with atomic_file(args.policy_report) as tmp:
            pd.DataFrame.from_records(report).to_csv(tmp, index=False)
    counts = table["status"].value_counts()
    ok = table["vix30"].dropna()
    span = f"{table.index[0]:%Y-%m-%d}..{table.index[-1]:%Y-%m-%d}"
    lines = [
        f"{args.preset}: {len(table)} dates {span}, {int(counts.get('ok', 0))} with a value",
        f"status: {', '.join(f'{k} {v}' for k, v in counts.items())}",
    ]
    if len(ok):
        lines.append(f"vix30 mean {ok.mean():.2f}, min {ok.min():.2f}, max {ok.max():.2f}")
    counted = [k for k in (report[0] if report else {}) if "dropped" in k or f"{args.preset} " in k]
    totals = {k: int(sum(r.get(k, 0) for r in report)) for k in counted}
    if totals:
        per_year = "" if args.policy_report else " (per year: --policy-report FILE)"
        lines.append(
            "chain policy: " + ", ".join(f"{k} {v}" for k, v in totals.items() if v) + per_year
        )
    lines.append(f"written: {args.out}")
    print("\n".join(lines))
    return 0
