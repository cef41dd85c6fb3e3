"""Dataset catalogue: the names used in YAML configs (``vix``, ``xiv``, ...) -> loader + files.

Files are found under a list of search roots (:func:`search_roots`): the config's
``data.root`` first, then the ``VOLBT_DATA_ROOT`` environment variable, then ``../shared/data``
beside the repository. Every frame returned by :func:`load_dataset` follows the loaders'
convention (see :mod:`data.loaders`): ``open, high, low, close, volume`` float64 columns on a
``date`` index; ``close`` is the total-return (split- and dividend-adjusted) price wherever the
source allows, ``raw_close`` the price as written in the file. Close-only series keep an all-NaN
``open`` and ``attrs['has_open'] = False``: they cannot be filled at the next open, and the
engine refuses ``next_open`` fills on them rather than inventing an open.

The embedded synthetic market (``data.synthetic.market_frames``) is the engine's default
source and uses the same names and columns; it is not part of this catalogue.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import pandas as pd

from volbacktest.data import cfe, loaders
from volbacktest.engine.errors import ConfigError, DataError, DataNotFoundError

logger = logging.getLogger(__name__)

ENV_DATA_ROOT = "VOLBT_DATA_ROOT"
"""Environment variable naming extra data search roots (``os.pathsep``-separated)."""


def source_checkout() -> Path | None:
    """The source checkout this package runs from (a clone, installed editable or not), or
    None when it runs from an installed wheel (then nothing is searched beside the package:
    site-packages holds no data)."""
    root = Path(__file__).resolve().parents[1]  # the checkout, or site-packages/volbacktest
    markers = ("pyproject.toml", "volbacktest", "engine", "strategies")
    return root if all((root / m).exists() for m in markers) else None


_CHECKOUT = source_checkout()
DEFAULT_DATA_ROOT: Path | None = _CHECKOUT.parent / "shared" / "data" if _CHECKOUT else None
"""``../shared/data`` beside the source checkout; None for a wheel install."""

Loader = Callable[[Sequence[Path]], pd.DataFrame]


@dataclass(frozen=True)
class DatasetSpec:
    """One named dataset: how to load it and what it covers.

    ``files`` are relative to a search root and passed, resolved, to ``loader`` in this order.
    ``start``/``end`` are the first/last dates of the shared copies (ISO), ``notes`` the choices
    and caveats a user should know (gaps, adjustments, roll conventions).
    """

    name: str
    kind: Literal["tradable", "signal"]
    files: tuple[str, ...]
    loader: Loader = field(repr=False)
    description: str
    start: str
    end: str
    notes: str = ""
    # kinds of data.quality problems documented for these files (reported as notes, never
    # stopping a run): the reason is in ``notes``
    acknowledged_checks: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.name:<10} {self.kind:<8} {self.start}..{self.end}  {self.description}"


class SearchRoots(list[Path]):
    """The existing search roots in priority order; ``candidates`` keeps every root considered
    (existing or not), for error messages."""

    def __init__(self, existing: Sequence[Path], candidates: Sequence[tuple[str, Path]]):
        super().__init__(existing)
        self.candidates: tuple[tuple[str, Path], ...] = tuple(candidates)


def search_roots(config_root: str | os.PathLike[str] | None = None) -> SearchRoots:
    """Data search roots: ``config_root`` (the config's ``data.root``), then each path in
    ``$VOLBT_DATA_ROOT``, then ``../shared/data`` beside the source checkout (not for a wheel
    install: site-packages holds no data).

    Only existing directories are returned; the result's ``candidates`` lists every root
    considered with where it came from.
    """
    candidates: list[tuple[str, Path]] = []
    if config_root is not None and str(config_root) != "":
        candidates.append(("config data.root", Path(config_root).expanduser().resolve()))
    for part in os.environ.get(ENV_DATA_ROOT, "").split(os.pathsep):
        if part.strip():
            candidates.append((f"${ENV_DATA_ROOT}", Path(part.strip()).expanduser().resolve()))
    if DEFAULT_DATA_ROOT is not None:
        candidates.append(("default ../shared/data", DEFAULT_DATA_ROOT))
    existing: list[Path] = []
    for _, root in candidates:
        if root.is_dir() and root not in existing:
            existing.append(root)
    return SearchRoots(existing, candidates)


def roots_for(root: str | os.PathLike[str] | None) -> SearchRoots:
    """Search roots for a run: an explicit root (``--data-root`` / ``data.root``) is the only
    root, so a wrong one fails instead of silently falling back; otherwise
    :func:`search_roots` (``$VOLBT_DATA_ROOT``, then ``../shared/data`` beside a checkout)."""
    if root is None or str(root) == "":
        return search_roots()
    path = Path(root).expanduser().resolve()
    return SearchRoots([path] if path.is_dir() else [], [("config data.root", path)])


# --------------------------------------------------------------------------------------------
# loaders over resolved paths (module-level so that specs pickle for parallel sweeps)

# Issues documented in the shared PROVENANCE.md files, logged at INFO instead of warned:
# VIX3M: 2009-11-27 (half day) the old file has a flat 26.01 bar, the new one 26.15.
VIX3M_KNOWN_DIFFERENCES = ("2009-11-27",)
# johnngo VXX: Yahoo "null" rows on the 2018-01-01 and 2018-01-15 market holidays.
VXX_JOHNNGO_NULL_ROWS = ("2018-01-01", "2018-01-15")


def _cboe(paths: Sequence[Path]) -> pd.DataFrame:
    return loaders.load_cboe_index(paths[0])


def _vix3m(paths: Sequence[Path]) -> pd.DataFrame:
    return loaders.load_vix3m(paths[0], paths[1], acknowledged=VIX3M_KNOWN_DIFFERENCES)


def _yahoo(paths: Sequence[Path], *, total_return: bool = False) -> pd.DataFrame:
    frame = loaders.load_yahoo_ohlcv(paths[0])
    return loaders.adjust_to_total_return(frame) if total_return else frame


def _etn(paths: Sequence[Path], **kwargs: object) -> pd.DataFrame:
    return loaders.load_etn(paths[0], **kwargs)  # type: ignore[arg-type]


def _vx(paths: Sequence[Path], *, column: str) -> pd.DataFrame:
    curve = loaders.load_vix_futures_continuous(paths[0])
    frame = loaders.close_only_frame(curve[column])
    frame.attrs = {**curve.attrs, **frame.attrs}
    return frame


def _etf50(paths: Sequence[Path], *, adjusted: bool) -> pd.DataFrame:
    return loaders.load_510050(paths[0], adjusted=adjusted)


def _cfe_sim(paths: Sequence[Path], **kwargs: object) -> pd.DataFrame:
    # paths: one per-contract file (its folder holds them all), then the continuous VX file
    return cfe.simulated_etn_frame(paths[0].parent, paths[1], **kwargs)  # type: ignore[arg-type]


def _cfe_front(paths: Sequence[Path]) -> pd.DataFrame:
    return cfe.front_future_frame(paths[0].parent, paths[1])


_CBOE = "cboe_vix_index/"
_ETN = "vix_etns/"
_VX_FILE = "vix_futures_continuous/vix_futures_VX1-VX8_with_VIX_SP500__quantintell.csv"
_CFE_FILES = ("vix_futures_cfe/per_contract/CFE_K04_VX.csv", _VX_FILE)
_SIM_NOTE = (
    "Simulated from VIX futures settles (engine.calculators.futures_curve): the {index} index "
    "from the per-contract CFE files (the folder of CFE_K04_VX.csv, 2004-03-26..2017-03-08), "
    "then the continuous VX1..VX8 file to 2021-12-23 (rule expiries); {etn}. Excess return: no "
    "T-bill interest on the collateral (no rate series in the shared data; about 1-5 %/yr in "
    "2004-2007, near 0 in 2009-2015). Settle-based (16:15 ET): daily returns differ from the "
    "real note's 16:00 close by timing noise that reverses the next day (see "
    "docs/futures)."
)
_VX_ROLL_NOTE = (
    "Daily settlement of the {which} monthly VIX future (weeklies excluded). The source rolls "
    "ON the final settlement day: on an expiry Wednesday it already shows the next contract "
    "(the expiring contract's SOQ is omitted), one day earlier than a front-month-until-expiry "
    "series. Its VIX column differs from Cboe's on 16 days; use the 'vix' dataset for spot."
)

# fmt: off
_SPECS = (
    DatasetSpec(
        "vix", "signal", (_CBOE + "VIX_History.csv",), _cboe,
        "Cboe VIX index, daily OHLC (index points)", "1990-01-02", "2023-08-25",
        "Before 2004-09 many bars are close-only copies (O=H=L=C). Holds 2004-06-11 (NYSE "
        "closed) and four 2022 US holidays (global trading hours); lacks 2006-05-04.",
    ),
    DatasetSpec(
        "vix3m", "signal", (_CBOE + "vix3mdailyprices.csv", _CBOE + "VIX3M_History.csv"),
        _vix3m, "Cboe VIX3M (ex-VXV), old file spliced with the new one", "2007-12-04",
        "2026-02-27",
        "VIX3M_History.csv (from 2009-09-18) is preferred where both exist; the files agree "
        "within 0.01 on 2,775 common days except 2009-11-27 (half day, acknowledged).",
    ),
    DatasetSpec(
        "vix9d", "signal", (_CBOE + "vix9ddailyprices.csv",), _cboe,
        "Cboe VIX9D (ex-VXST), daily", "2011-01-03", "2020-09-25",
        "Close only before 2013-11-19 (open/high/low NaN), so has_open is False.",
    ),
    DatasetSpec(
        "vix6m", "signal", (_CBOE + "vix6mdailyprices.csv",), _cboe,
        "Cboe VIX6M (ex-VXMT), daily", "2008-01-07", "2020-09-25",
        "Close only before 2013-11-27 (open/high/low NaN), so has_open is False.",
    ),
    DatasetSpec(
        "spx", "signal", ("spx_index/GSPC_yahoo.csv",), _yahoo,
        "S&P 500 index (Yahoo ^GSPC), daily OHLCV", "2000-01-03", "2022-11-18",
        "Index points; adj_close equals close.",
    ),
    DatasetSpec(
        "xiv", "tradable", (_ETN + "XIV_close_stitched_DERIVED.csv",),
        partial(_etn, splits=None),
        "VelocityShares XIV (inverse short-term VIX futures ETN), split-adjusted close",
        "2010-11-30", "2017-12-05",
        "Close only (no opens: next_open fills are refused), stitched from four Yahoo "
        "downloads that agree on every overlap (attrs['segments']). The last ~49 trading days "
        "(2017-12-06 .. 2018-02-15, incl. the 2018-02-05 collapse) are in no file.",
    ),
    DatasetSpec(
        "vxx", "tradable", (_ETN + "VXX_yahoo_adjusted__johnngo.csv",),
        partial(_etn, acknowledged=VXX_JOHNNGO_NULL_ROWS),
        "iPath VXX (original series), OHLCV adjusted for all five 1-for-4 reverse splits",
        "2009-01-30", "2018-02-13",
        "Chosen because it is the only file covering the whole XIV history and beyond with "
        "opens; every price column is already adjusted (factor 1024 at the start), so levels "
        "are huge early on: use returns. Two Yahoo null rows (2018-01-01, 2018-01-15 "
        "holidays) are dropped. 2018-02-06 open +57 % is real.",
    ),
    DatasetSpec(
        "vxx_raw", "tradable", (_ETN + "VXX_yahoo_raw_and_adj__jhlu871.csv",), _etn,
        "iPath VXX with raw traded closes (raw_close) and split handling", "2009-01-30",
        "2017-01-03",
        "Splits detected from Close/Adj Close: 1-for-4 on 2010-11-09, 2012-10-05, 2013-11-08, "
        "2016-08-09 (attrs['splits']); close is the adjusted series, raw_close the traded price.",
    ),
    DatasetSpec(
        "vxxb", "tradable", (_ETN + "VXX_seriesB_yahoo__xjcarter.csv",), _etn,
        "iPath Series B VXX (VXXB, renamed VXX in 2019), adjusted as of ~2022-11",
        "2018-01-25", "2022-11-18",
        "A different note from the original VXX. The first two rows are flat placeholders "
        "with zero volume.",
    ),
    DatasetSpec(
        "svxy", "tradable", (_ETN + "SVXY_yahoo__smartbing.csv",), _etn,
        "ProShares SVXY, OHLCV adjusted as of 2018-12 (DD/MM/YYYY source)", "2011-10-04",
        "2018-12-14",
        "-1x until 2018-02-27, -0.5x after; the -83 % close on 2018-02-06 is real.",
    ),
    DatasetSpec(
        "ziv", "tradable", (_ETN + "ZIV_yahoo__shankhs.csv",), _etn,
        "VelocityShares ZIV (inverse mid-term), split-adjusted", "2010-11-30", "2014-02-24",
        "8-for-1 split on 2011-06-27 detected from Close/Adj Close. The longest ZIV file; a "
        "2016-2017 file exists (ZIV_yahoo__mmzhao.csv) but cannot be joined (2-year gap). "
        "Thinly traded at first: the close repeats on up to 12 consecutive days in 2011 "
        "(stale runs, reported in the run's notes).",
        ("stale",),
    ),
    DatasetSpec(
        "vxz", "tradable", (_ETN + "VXZ_yahoo__mmzhao.csv",), _etn,
        "iPath VXZ (mid-term VIX futures ETN), split-adjusted", "2016-01-04", "2017-01-25",
        "1-for-4 reverse split on 2016-08-09 detected from Close/Adj Close.",
    ),
    DatasetSpec(
        "vx1", "signal", (_VX_FILE,), partial(_vx, column="vx1"),
        "Front-month VIX future daily settle (continuous)", "2007-04-02", "2021-12-23",
        _VX_ROLL_NOTE.format(which="first"),
    ),
    DatasetSpec(
        "vx2", "signal", (_VX_FILE,), partial(_vx, column="vx2"),
        "Second-month VIX future daily settle (continuous)", "2007-04-02", "2021-12-23",
        _VX_ROLL_NOTE.format(which="second"),
    ),
    DatasetSpec(
        "xiv_sim", "tradable", _CFE_FILES,
        partial(_cfe_sim, leverage=-1.0, annual_fee=0.0135, after_termination="flat"),
        "XIV simulated: -1x daily short-term VIX futures index, 1.35 %/yr fee",
        "2004-03-26", "2021-12-23",
        _SIM_NOTE.format(
            index="short-term", etn="accelerated on 2018-02-05 (fell >= 80 % in a day) and held "
            "flat at that value afterwards (like cash: the note was redeemed; a stale run by "
            "construction, reported in the run's notes)",
        ),
        ("stale",),
    ),
    DatasetSpec(
        "vxx_sim", "tradable", _CFE_FILES, partial(_cfe_sim, leverage=1.0, annual_fee=0.0089),
        "VXX simulated: long short-term VIX futures index, 0.89 %/yr fee",
        "2004-03-26", "2021-12-23",
        _SIM_NOTE.format(index="short-term", etn="no reverse splits (split-free by construction)"),
    ),
    DatasetSpec(
        "svxy_sim", "tradable", _CFE_FILES,
        partial(
            _cfe_sim, leverage=-1.0, annual_fee=0.0095,
            leverage_changes={"2018-02-27": -0.5}, acceleration_drop=1.0,
        ),
        "SVXY simulated: -1x (then -0.5x from 2018-02-27) short-term index, 0.95 %/yr",
        "2004-03-26", "2021-12-23",
        _SIM_NOTE.format(index="short-term", etn="a fund, so no acceleration clause"),
    ),
    DatasetSpec(
        "vxz_sim", "tradable", _CFE_FILES,
        partial(_cfe_sim, index="mid_term", leverage=1.0, annual_fee=0.0089),
        "VXZ simulated: long mid-term (months 4-7) VIX futures index, 0.89 %/yr fee",
        "2008-04-21", "2021-12-23",
        _SIM_NOTE.format(
            index="mid-term", etn="starts 2008-04-21: before it CFE did not list every month "
            "from the 4th to the 7th",
        ),
    ),
    DatasetSpec(
        "ziv_sim", "tradable", _CFE_FILES,
        partial(_cfe_sim, index="mid_term", leverage=-1.0, annual_fee=0.0135),
        "ZIV simulated: -1x daily mid-term VIX futures index, 1.35 %/yr fee",
        "2008-04-21", "2021-12-23",
        _SIM_NOTE.format(index="mid-term", etn="starts 2008-04-21 (see vxz_sim)"),
    ),
    DatasetSpec(
        "vx1_cfe", "signal", _CFE_FILES, _cfe_front,
        "Front-month VIX future settle from the per-contract CFE files, then the continuous file",
        "2004-03-26", "2021-12-23",
        "F1 = the first monthly contract expiring after the date (rolls ON the settlement day, "
        "like vx1, which it equals on 2007-04-02..2017-03-08). Per-contract files validated by "
        "data.cfe (known CFE errors dropped, gaps left empty); from 2017-03-09 the continuous "
        "file's VX1.",
    ),
    DatasetSpec(
        "gld", "tradable", ("pairs_gld_gdx/GLD.csv",), partial(_yahoo, total_return=True),
        "SPDR Gold Shares (GLD), total-return OHLC", "2004-11-18", "2019-07-12",
        "close = Adj Close (no dividends: equals the traded close); raw_close = traded close.",
    ),
    DatasetSpec(
        "gdx", "tradable", ("pairs_gld_gdx/GDX.csv",), partial(_yahoo, total_return=True),
        "VanEck Gold Miners (GDX), total-return OHLC", "2006-05-22", "2019-07-12",
        "close = Adj Close (dividend-adjusted as of 2019-07: use it for returns and hedge "
        "ratios); raw_close = traded close (use it for price levels).",
    ),
    DatasetSpec(
        "etf50", "tradable", ("china_50etf/510050_daily_unadjusted__zsh-a.csv",),
        partial(_etf50, adjusted=False),
        "510050.SH SSE 50 ETF, unadjusted (CNY)", "2010-06-01", "2024-09-30",
        "Traded prices: use with option strikes. Not dividend-adjusted (ex-dividend drops on "
        "2018-12-03, 2019-12-02, ...); for total return use etf50_qfq.",
    ),
    DatasetSpec(
        "etf50_qfq", "tradable", ("china_50etf/510050_daily_qfq_forward_adjusted__zsh-a.csv",),
        partial(_etf50, adjusted=True),
        "510050.SH SSE 50 ETF, dividend-adjusted (file labelled qfq)", "2010-05-31",
        "2024-05-31",
        "Use for dividend-inclusive backtests of the ETF itself. Despite the qfq label the "
        "prices are the unadjusted ones plus the cash dividends paid since 2010 (additive, "
        "anchored at the start), so levels are not traded prices after 2010-11-16.",
    ),
)
# fmt: on

DATASETS: MappingProxyType[str, DatasetSpec] = MappingProxyType({s.name: s for s in _SPECS})
"""Every catalogued dataset by name."""

ALIASES = MappingProxyType(
    {"vxv": "vix3m", "vxst": "vix9d", "vxmt": "vix6m", "gspc": "spx", "sp500": "spx"}
)
"""Old Cboe tickers and common synonyms accepted for catalogue names."""


def list_datasets() -> list[DatasetSpec]:
    """Every catalogued dataset, sorted by name (for the CLI's listing)."""
    return sorted(DATASETS.values(), key=lambda s: s.name)


def dataset_spec(name: str) -> DatasetSpec:
    """The spec for ``name`` (case-insensitive; old Cboe tickers such as ``vxv`` accepted).

    Unknown names raise :class:`ConfigError` listing the valid names with a did-you-mean.
    """
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key in DATASETS:
        return DATASETS[key]
    choices = sorted(DATASETS)
    close = difflib.get_close_matches(key, [*choices, *ALIASES], n=3, cutoff=0.5)
    suggestion = ", ".join(f"'{c}'" for c in dict.fromkeys(ALIASES.get(c, c) for c in close))
    hint = f" Did you mean {suggestion}?" if close else ""
    raise ConfigError(
        f"unknown dataset {name!r}.{hint} Valid names: {', '.join(choices)} (aliases: "
        f"{', '.join(f'{a}->{t}' for a, t in ALIASES.items())})"
    )


def _roots_text(roots: Sequence[Path]) -> str:
    candidates = getattr(roots, "candidates", None) or [("given", Path(r)) for r in roots]
    lines = []
    for origin, root in candidates:
        state = "exists" if Path(root).is_dir() else "does not exist"
        lines.append(f"  - {root} ({origin}; {state})")
    return "\n".join(lines) if lines else "  (no search roots)"


def resolve_files(spec: DatasetSpec, roots: Sequence[Path]) -> tuple[Path, ...]:
    """Absolute paths of ``spec.files``, each from the first root that holds it."""
    found = []
    for relative in spec.files:
        for root in roots:
            path = Path(root) / relative
            if path.is_file():
                found.append(path)
                break
        else:
            folder = relative.split("/", 1)[0]
            raise DataNotFoundError(
                f"dataset '{spec.name}' needs the file {relative}, which is in none of the data "
                f"search roots tried:\n{_roots_text(roots)}\nFix: pass --data-root, or set "
                f"data.root in the config (or the {ENV_DATA_ROOT} environment variable), to the "
                f"folder that holds '{folder}/' (normally ../shared/data beside the repository), "
                "or use the embedded synthetic source"
            )
    return tuple(found)


def _bound(value: object, key: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}={value!r} is not a date; write it as YYYY-MM-DD") from exc
    if stamp is pd.NaT or stamp.tzinfo is not None:
        raise ConfigError(f"{key}={value!r} must be a plain date (YYYY-MM-DD, no time zone)")
    return stamp.normalize()


def load_dataset(
    name: str,
    roots: Sequence[str | os.PathLike[str]] | None = None,
    start: object = None,
    end: object = None,
) -> pd.DataFrame:
    """Load catalogued dataset ``name`` from the first search root holding its files.

    ``roots`` defaults to :func:`search_roots`; ``start``/``end`` (inclusive, YYYY-MM-DD) cut
    the history. The frame has ``open, high, low, close, volume`` (+ extras) and attrs
    ``dataset``, ``kind``, ``files``, ``has_open`` besides the loader's own.

    Raises :class:`ConfigError` for an unknown name (with did-you-mean) or bad bounds,
    :class:`DataNotFoundError` naming the missing relative path and every root tried, and
    :class:`DataError` if the cut leaves no rows.
    """
    spec = dataset_spec(name)
    if roots is None:
        roots = search_roots()
    elif not isinstance(roots, SearchRoots):
        roots = [Path(r).expanduser() for r in roots]
    lo, hi = _bound(start, "start"), _bound(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"start {lo:%Y-%m-%d} is after end {hi:%Y-%m-%d}; swap them")
    paths = resolve_files(spec, roots)  # type: ignore[arg-type]
    frame = spec.loader(paths)
    attrs = dict(frame.attrs)
    if lo is not None or hi is not None:
        frame = frame.loc[lo:hi]
        if frame.empty:
            raise DataError(
                f"dataset '{spec.name}' has no rows between {start} and {end}: it covers "
                f"{spec.start} .. {spec.end}; change the config's start/end"
            )
    frame.attrs = {
        **attrs,
        "dataset": spec.name,
        "kind": spec.kind,
        "files": tuple(str(p) for p in paths),
        "has_open": bool(frame["open"].notna().all()),
    }
    logger.debug("loaded %s: %d rows from %s", spec.name, len(frame), ", ".join(map(str, paths)))
    return frame
