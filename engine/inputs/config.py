"""YAML → typed, frozen configuration, validated once before anything runs.

``load_config(path)`` returns a :class:`BacktestConfig` or raises :class:`ConfigError` with one
message that names the file, the key path, the bad value, what is wrong and the valid choices
(did-you-mean for misspelt keys and strategy names). Nothing unvalidated reaches backtrader.

``strategy.name`` is looked up in the registry (``volbacktest.strategies``), unless the config is
built with a strategy of the user's own (``config_from_mapping(raw, strategy=spec)``): the config
then carries that :class:`~volbacktest.strategies.base.StrategySpec` privately (never in the
registry), validates ``strategy.params`` against its model and keeps it in ``with_overrides``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from volbacktest.data.user_files import FORMATS
from volbacktest.engine.errors import ConfigError, LookAheadWarning
from volbacktest.engine.inputs.chainseries import is_chain_input, parse_input
from volbacktest.engine.inputs.decision import DecisionPlan
from volbacktest.engine.inputs.filters import get_filter
from volbacktest.engine.inputs.futures_config import FuturesConfig, check_instrument
from volbacktest.engine.inputs.options_config import OptionsConfig, check_options_instrument
from volbacktest.strategies import get as registered_strategy
from volbacktest.strategies.base import StrategyParams, StrategySpec


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CommissionConfig(_Model):
    percent: float = Field(
        0.0, ge=0.0, lt=0.1, description="fraction of traded value (0.001 = 10bp)"
    )
    per_share: float = Field(0.0, ge=0.0, description="currency per share traded")


class SlippageConfig(_Model):
    percent: float = Field(0.0, ge=0.0, lt=0.1, description="fill price moved against the order")


class FillMode(StrEnum):
    """When a decision computed on bar t's close is filled (``execution.fill``).

    ``lag``: bars between the decision and its fill (1, or 0 for ``same_close``);
    ``uses_open``: fills at the open (backtrader's cheat-on-open) instead of a close
    (cheat-on-close); ``look_ahead``: trades the close the decision observed.
    """

    NEXT_CLOSE = "next_close"
    NEXT_OPEN = "next_open"
    SAME_CLOSE = "same_close"

    @property
    def lag(self) -> int:
        return 0 if self is FillMode.SAME_CLOSE else 1

    @property
    def uses_open(self) -> bool:
        return self is FillMode.NEXT_OPEN

    @property
    def look_ahead(self) -> bool:
        return self is FillMode.SAME_CLOSE

    def label(self) -> str:
        """How outputs name the mode (look-ahead spelled out)."""
        if self.look_ahead:
            return "same_close (LOOK-AHEAD: trades the close it observes)"
        return self.value

    def look_ahead_warning(self, run: str) -> LookAheadWarning:
        return LookAheadWarning(
            f"{run}: execution.fill same_close trades on the close the signal observed "
            "(look-ahead on daily data); results are labelled"
        )


class ExecutionConfig(_Model):
    fill: FillMode = Field(
        FillMode.NEXT_CLOSE,
        description="when a signal computed on bar t's close is filled: at bar t+1's close "
        "(default), at bar t+1's open, or at bar t's own close (look-ahead on daily closes)",
    )
    initial_cash: float = Field(100_000.0, gt=0.0)
    commission: CommissionConfig = CommissionConfig()
    slippage: SlippageConfig = SlippageConfig()
    sizing: Literal["fractional", "integer"] = "fractional"
    lot_size: int = Field(1, ge=1, description="shares per lot when sizing is integer")
    rebalance: Literal["on_change", "daily"] = Field(
        "on_change", description="trade when the target weights change, or back to target daily"
    )
    max_gross_leverage: float = Field(1.0, gt=0.0, le=10.0)

    @property
    def look_ahead(self) -> bool:
        return self.fill.look_ahead

    @property
    def integer_lot(self) -> int | None:
        """Shares per lot when orders are rounded to whole lots, None for fractional sizing."""
        return self.lot_size if self.sizing == "integer" else None

    def fill_label(self) -> str:
        return self.fill.label()


class SyntheticConfig(_Model):
    seed: int = Field(7, ge=0)
    start: dt.date = dt.date(2005, 1, 3)
    end: dt.date = dt.date(2019, 12, 31)

    @model_validator(mode="after")
    def _order(self):
        if self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start}")
        return self


class DatasetFile(_Model):
    """One ``data.datasets`` entry: a file (or a CFE folder) of the user's, under a dataset
    name (see ``data.user_files`` for the formats and their keys)."""

    path: Path = Field(description="file or folder; relative paths are read from the config's")
    format: Literal[FORMATS] = Field("auto", description="auto: detected, and reported")
    kind: Literal["tradable", "signal"] | None = Field(
        None, description="default: tradable when the strategy trades it, else signal"
    )
    adjust: Literal["none", "total_return"] = Field(
        "none", description="total_return: scale prices by Adj Close / Close (yahoo, csv)"
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="engine name -> the file's column (csv, parquet, chain)"
    )
    date_format: str | None = Field(None, description="strptime layout, e.g. '%d.%m.%Y'")
    dayfirst: bool = Field(False, description="read ambiguous D/M/YYYY dates day first")
    sep: str = Field(",", min_length=1, max_length=1, description="field separator (csv)")
    decimal: Literal[".", ","] = Field(".", description="decimal mark (csv)")
    month: int = Field(1, ge=1, le=9, description="cfe: the k-th monthly contract (1 = front)")
    acknowledge: tuple[dt.date, ...] = Field(
        (), description="dates whose repairs (e.g. dropped null rows) are known and accepted"
    )
    # option chains (chain, 50etf, gs, spx_quotes) read as column@<name>: engine.inputs.user_chains
    underlying: str | None = Field(
        None, description="chain: dataset name of the underlying the strategy trades (required)"
    )
    rates: float | Literal["shibor"] = Field(
        0.0, description="chain: constant decimal rate, or shibor (the shared SHIBOR curve)"
    )
    contracts: Path | None = Field(None, description="50etf: the SSE contract list (A contracts)")
    multiplier: float | None = Field(
        None, gt=0.0, description="chain: units per contract where the file has none"
    )


class ChecksConfig(_Model):
    """Thresholds of the spike/stale/gap checks every price series goes through
    (``data.quality``)."""

    spike: float = Field(0.7, gt=0.0, description="log jump from both neighbours that reverses")
    stale: int = Field(10, ge=1, description="max consecutive rows with an identical close")
    gap: int = Field(10, ge=0, description="max sessions missing between two rows")
    calendar: Literal["weekdays", "nyse", "sse"] = Field(
        "weekdays", description="the sessions gaps are counted in"
    )


class DataConfig(_Model):
    source: Literal["synthetic", "shared", "files"] = Field(
        "synthetic",
        description="embedded synthetic market, real files from the data root, or only the "
        "files of data.datasets",
    )
    datasets: dict[str, DatasetFile] = Field(
        default_factory=dict,
        description="the user's own files by dataset name; they win over data.source's",
    )
    on_problem: Literal["stop", "warn"] = Field(
        "stop",
        description="a spike, stale run, gap or repaired row: stop the run, or go on and list "
        "it in the run's notes",
    )
    checks: ChecksConfig = ChecksConfig()
    root: Path | None = Field(None, description="data root for source: shared (else searched)")
    start: dt.date | None = None
    end: dt.date | None = None
    ffill_limit: int = Field(5, ge=0, description="max bars a signal series is carried forward")
    warmup: Literal["auto", "none"] | int = Field(
        "auto",
        description="bars of history before data.start the signals may use: auto (all that "
        "exists), none (the trading calendar only) or a number of bars",
    )
    etns: Literal["actual", "simulated"] = Field(
        "actual",
        description="real ETN prices, or ETNs reconstructed from VIX futures (datasets <name>_sim; "
        "shared source only)",
    )
    synthetic: SyntheticConfig = SyntheticConfig()
    bad_quotes: Literal["stop", "drop", "warn"] = Field(
        "stop",
        description="option-chain rows with a crossed quote, a negative price or an expiry "
        "before the trade date: stop with an error naming them, drop them (counted in the "
        "run's notes) or keep them with a warning (data.chains.ChainPolicy.bad_quotes)",
    )

    @model_validator(mode="after")
    def _order(self):
        if isinstance(self.warmup, int) and self.warmup < 0:
            raise ValueError(f"warmup {self.warmup} is negative; use auto, none or bars >= 0")
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start}")
        if self.source == "files" and not self.datasets:
            raise ValueError(
                "source: files reads only data.datasets, which is empty; add entries such as "
                "vix: {path: my/VIX_History.csv, format: cboe}"
            )
        return self


class StrategyConfig(_Model):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class FilterConfig(BaseModel):
    """One entry of ``filters:``: ``type`` plus that filter type's own keys."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str


class ReportConfig(_Model):
    out_dir: Path = Path("results")
    tearsheet: bool = Field(
        True, description="write the pyfolio tear sheet PNG (returns, positions, transactions)"
    )
    plots: bool = True
    html: bool = Field(True, description="write report.html, the run's self-contained page")
    benchmark: str | None = Field(
        None,
        min_length=1,
        description="a dataset name (spx, xiv, etf50, ...) to measure the run against: alpha, "
        "beta, correlation, information ratio, tracking error, up/down capture",
    )
    format: Literal["csv", "parquet"] = Field(
        "csv", description="tables of a run folder: plain CSV, or Parquet (storage extra)"
    )


class BacktestConfig(_Model):
    """One validated, frozen backtest config (the YAML's layout): ``name``, ``strategy``,
    ``filters``, ``data``, ``execution``, ``report``. Build it with :func:`load_config` or
    :func:`config_from_mapping`; ``with_overrides`` makes validated copies."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    strategy: StrategyConfig
    filters: tuple[FilterConfig, ...] = ()
    data: DataConfig = DataConfig()
    execution: ExecutionConfig = ExecutionConfig()
    report: ReportConfig = ReportConfig()
    # VIX futures traded as contracts (issue 12): runs on engine.execution.futures
    futures: FuturesConfig | None = None
    # listed options traded as contracts (issue 13): runs on engine.execution.options
    options: OptionsConfig | None = None
    source_file: Path | None = Field(None, exclude=True)
    # a strategy of the user's own, not in the registry (set by config_from_mapping(strategy=))
    _user_strategy: StrategySpec | None = PrivateAttr(None)
    # (strategy, filters, user strategy, plan): the plan validated once per config (a sweep
    # reads it several times per run); not pickled, and recomputed if a copy changed them
    _plan_memo: tuple | None = PrivateAttr(None)

    @property
    def spec(self) -> StrategySpec:
        """The strategy run: the user's own when the config carries one, else the registry's."""
        return _strategy_spec(self.strategy, self.user_strategy)

    @property
    def user_strategy(self) -> StrategySpec | None:
        """The user's strategy this config was built with (None: a registered strategy)."""
        # read from pydantic's private store directly: ``self._user_strategy`` goes through
        # BaseModel.__getattr__, and executors read ``cfg.plan`` once per run
        return self.__pydantic_private__["_user_strategy"]

    @property
    def params(self) -> StrategyParams:
        return self.plan.params

    @property
    def filter_params(self) -> tuple:
        return self.plan.filters

    @property
    def plan(self):
        """The strategy's decision with its filters (what the executors evaluate)."""
        private = self.__pydantic_private__
        memo = private["_plan_memo"]
        user = private["_user_strategy"]
        if memo is not None and memo[0] is self.strategy and memo[1] is self.filters:
            if memo[2] is user:
                return memo[3]
        plan = DecisionPlan(
            _strategy_spec(self.strategy, user),
            _strategy_params(self.strategy, user),
            tuple(_filter_params(f) for f in self.filters),
        )
        private["_plan_memo"] = (self.strategy, self.filters, user, plan)
        return plan

    def __getstate__(self):
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private and private.get("_plan_memo") is not None:
            state = {**state, "__pydantic_private__": {**private, "_plan_memo": None}}
        return state

    def resolved(self) -> dict:
        """The config with every default filled in (strategy params included), YAML-ready."""
        out = self.model_dump(mode="json", exclude={"source_file"})
        if out.get("futures") is None:
            out.pop("futures", None)
        if out.get("options") is None:
            out.pop("options", None)
        out["strategy"]["params"] = self.params.model_dump(mode="json")
        out["filters"] = [
            {"type": f.type, **p.model_dump(mode="json")}
            for f, p in zip(self.filters, self.filter_params, strict=True)
        ]
        return out

    def with_overrides(self, **updates) -> BacktestConfig:
        """A copy with dotted-path overrides, e.g. ``{"strategy.params.window": 20}``; validated."""
        raw = self.resolved()
        for dotted, value in updates.items():
            set_path(raw, dotted, value)
        return config_from_mapping(raw, source=self.source_file, strategy=self.user_strategy)


def set_path(raw: dict, dotted: str, value) -> None:
    """Set ``raw[a][b]...[z] = value``, copying each mapping on the way (``raw`` itself is
    changed in place), so mappings ``raw`` shares with another config are never changed."""
    node = raw
    keys = dotted.split(".")
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if isinstance(child, Mapping):
            child = node[k] = dict(child)
        node = child
    node[keys[-1]] = value


def _strategy_spec(sc: StrategyConfig, user: StrategySpec | None = None) -> StrategySpec:
    return user if user is not None else registered_strategy(sc.name)


def _strategy_params(sc: StrategyConfig, user: StrategySpec | None = None) -> StrategyParams:
    return _strategy_spec(sc, user).make_params(sc.params)


def _filter_params(fc: FilterConfig):
    values = {k: v for k, v in (fc.model_extra or {}).items()}
    return get_filter(fc.type).params_model(**values)


# --------------------------------------------------------------------------- errors
def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the key at ``loc`` (for listing valid keys)."""
    current: Any = model
    key_next = False  # the previous part was a dict[str, Model] field: this part is a key
    for part in loc[:-1]:
        if key_next:
            key_next = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
        key_next = getattr(current, "__origin__", None) is dict
        args = getattr(current, "__args__", ())
        for a in args:  # Optional[Model]
            if isinstance(a, type) and issubclass(a, BaseModel):
                current = a
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe_error(err: dict, root_model: type[BaseModel], prefix: tuple) -> str:
    loc = tuple(err["loc"])
    path = ".".join(str(p) for p in prefix + loc) or "(top level)"
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        owner = _model_at(root_model, loc)
        valid = sorted(owner.model_fields) if owner else []
        valid = [v for v in valid if v != "source_file"]
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{path}: unknown key {loc[-1]!r}{hint}; valid keys: {', '.join(valid)}"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind in ("literal_error", "enum"):
        expected = err.get("ctx", {}).get("expected", "")
        close = difflib.get_close_matches(
            str(value), [e.strip(" '") for e in expected.replace(" or ", ",").split(",")], n=1
        )
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{path}: invalid value {value!r}{hint}; valid choices: {expected}"
    shown = "" if isinstance(value, Mapping) else f" (got {value!r})"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{path}: {msg}{shown}"


_UNION_TAG = re.compile(r".*\[.*\]$|[A-Z]\w*$")  # list[any], function-after[...], RangeAxis


def _user_errors(errors: list[dict]) -> list[dict]:
    """pydantic's errors without the union branches' internals: a key that may be a list or a
    range reports ``sweep.grid.window: end 2 is before start 41``, not one error per branch
    named ``list[any]`` / ``function-after[_order(), RangeAxis]``. Where a branch raised a
    validator's own message, the other branches' type errors are dropped."""
    cleaned = []
    for err in errors:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))
        cleaned.append({**err, "loc": loc, "tagged": loc != tuple(err["loc"])})
    by_loc: dict[tuple, list[dict]] = {}
    for err in cleaned:
        by_loc.setdefault(err["loc"], []).append(err)
    out = []
    for group in by_loc.values():
        if len(group) > 1 and any(e["tagged"] for e in group):
            own = [e for e in group if e["type"] == "value_error"]
            group = own or group
        seen = set()
        for err in group:
            if err["msg"] not in seen:
                seen.add(err["msg"])
                out.append(err)
    return out


def _raise_validation(exc: ValidationError, model, source, prefix=()) -> None:
    where = f"{source}: " if source else ""
    lines = [_describe_error(e, model, prefix) for e in _user_errors(exc.errors())]
    if len(lines) == 1:
        raise ConfigError(f"{where}{lines[0]}") from None
    raise ConfigError(f"{where}{len(lines)} problems:\n  " + "\n  ".join(lines)) from None


def _with_strategy_name(raw: dict, user: StrategySpec | None, where: str) -> dict:
    """A config for a user's strategy may leave out ``strategy`` or ``strategy.name``."""
    if user is None:
        return raw
    if not isinstance(user, StrategySpec):
        raise ConfigError(
            f"{where}strategy=: expected a StrategySpec (from @volbacktest.strategy), got "
            f"{type(user).__name__}"
        )
    section = raw.get("strategy")
    if section is None:
        raw["strategy"] = {"name": user.name}
    elif isinstance(section, Mapping) and "name" not in section:
        raw["strategy"] = {"name": user.name, **section}
    return raw


def _attach_strategy(cfg: BacktestConfig, user: StrategySpec | None, where: str) -> StrategySpec:
    """The config's strategy: the user's (attached to ``cfg``; ``strategy.name`` must name it)
    or the registry's (an unknown name raises with the valid names)."""
    if user is not None:
        if cfg.strategy.name != user.name:
            raise ConfigError(
                f"{where}strategy.name: {cfg.strategy.name!r} is not the strategy given "
                f"({user.name!r}); name it {user.name!r} or leave strategy.name out"
            )
        cfg._user_strategy = user
    try:
        return cfg.spec
    except ConfigError as exc:
        raise ConfigError(f"{where}strategy.name: {exc}") from None


def config_from_mapping(
    raw: Mapping, source: Path | str | None = None, *, strategy: StrategySpec | None = None
) -> BacktestConfig:
    """Validate a mapping (already parsed YAML) into a :class:`BacktestConfig`.

    ``strategy``: a strategy of the user's own (a :class:`StrategySpec` not in the registry) for
    this config only; ``strategy.name`` must be its name (filled in when absent) and
    ``strategy.params`` is validated against its parameter model.
    """
    where = f"{source}: " if source else ""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}the file must hold a mapping of keys (got {type(raw).__name__})")
    raw = _with_strategy_name(dict(raw), strategy, where)
    if source is not None and "name" not in raw:
        raw["name"] = Path(str(source)).stem
    raw = _with_dataset_paths(raw, Path(source).parent if source else Path.cwd(), where)
    try:
        cfg = BacktestConfig(**raw, source_file=Path(source) if source else None)
    except ValidationError as exc:
        _raise_validation(exc, BacktestConfig, source)
    spec = _attach_strategy(cfg, strategy, where)
    try:
        spec.make_params(cfg.strategy.params)
    except ValidationError as exc:
        _raise_validation(exc, spec.params_model, source, prefix=("strategy", "params"))
    for i, fc in enumerate(cfg.filters):
        try:
            model = get_filter(fc.type).params_model
        except ConfigError as exc:
            raise ConfigError(f"{where}filters.{i}.type: {exc}") from None
        try:
            _filter_params(fc)
        except ValidationError as exc:
            _raise_validation(exc, model, source, prefix=("filters", i))
    _check_chain_inputs(cfg, where)
    check_instrument(cfg.params.assets(), cfg.futures, where)
    check_options_instrument(cfg.params, cfg.options, where)
    return cfg


def _with_dataset_paths(raw: dict, folder: Path, where: str) -> dict:
    """``data.datasets.*.path`` made absolute (relative ones are read from ``folder``, the
    config file's) and checked to exist, so that a wrong path fails before anything runs."""
    data = raw.get("data")
    entries = data.get("datasets") if isinstance(data, Mapping) else None
    if not isinstance(entries, Mapping):
        return raw
    fixed = {}
    for name, entry in entries.items():
        if isinstance(entry, Mapping) and isinstance(entry.get("path"), str | Path):
            given = Path(entry["path"]).expanduser()
            path = given if given.is_absolute() else Path(os.path.abspath(folder / given))
            if not path.exists():
                raise ConfigError(
                    f"{where}data.datasets.{name}.path: {str(given)!r} does not exist (looked "
                    f"for {path}; a relative path is read from the config file's folder "
                    f"{folder}); fix the path"
                )
            entry = {**entry, "path": str(path)}
        if isinstance(entry, Mapping) and isinstance(entry.get("contracts"), str | Path):
            given = Path(entry["contracts"]).expanduser()
            path = given if given.is_absolute() else Path(os.path.abspath(folder / given))
            entry = {**entry, "contracts": str(path)}
        fixed[name] = entry
    return {**raw, "data": {**data, "datasets": fixed}}


def _check_chain_inputs(cfg: BacktestConfig, where: str) -> None:
    """A series computed from an option chain (``column@chain``) reaches the decision through
    the option-chain feed of the chain's traded underlying: the chain must exist and its
    underlying must be one of the strategy's assets."""
    assets = tuple(cfg.params.assets())
    origins = [("strategy.params", n) for n in cfg.params.inputs()]
    origins += [(f"filters.{i}", f.series()) for i, f in enumerate(cfg.filter_params)]
    for key, name in origins:
        if not is_chain_input(name):
            continue
        try:
            _, _, chain = parse_input(name, cfg.data)
        except ConfigError as exc:
            field = ".chain" if key.startswith("filters.") else ""
            raise ConfigError(f"{where}{key}{field}: {exc}") from None
        if chain.underlying not in assets:
            trades = " and ".join(repr(a) for a in assets)
            raise ConfigError(
                f"{where}{key}: {name} is read through the option-chain feed of its "
                f"underlying: chain {chain.name!r} has underlying {chain.underlying!r} but the "
                f"strategy trades {trades}; trade {chain.underlying!r} (as ivix_timing does) or "
                f"use a chain on {trades}"
            )


class _DateCheckingLoader(yaml.SafeLoader):
    """yaml's safe loader, but a date-looking value that is no date (``2019-13-45``) is an
    error naming its line, not a bare ``ValueError: month must be in 1..12``."""

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{node.value!r} is not a valid date ({exc}); write it as YYYY-MM-DD",
                node.start_mark,
            ) from None


_DateCheckingLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _DateCheckingLoader.construct_yaml_timestamp
)


def read_yaml(path: str | Path, kind: str = "config", example: str = "configs/vratio.yaml"):
    """Parse one YAML file into a mapping, or raise a ConfigError naming the file (and the line
    for a syntax error) and pointing at ``example``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {kind} file not found (cwd {Path.cwd()})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); a {kind} is a "
            f"YAML text file, see {example}"
        ) from None
    try:
        raw = yaml.load(text, Loader=_DateCheckingLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{at}: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: the file is empty; see {example} for an example")
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{path}: the file must hold a mapping of keys (got {type(raw).__name__}); "
            f"see {example}"
        )
    return dict(raw)


def load_config(path: str | Path) -> BacktestConfig:
    """Read and validate one YAML config file."""
    return config_from_mapping(read_yaml(path), source=Path(path))


def dump_config(cfg: BacktestConfig) -> str:
    return yaml.safe_dump(cfg.resolved(), sort_keys=False, allow_unicode=True)
