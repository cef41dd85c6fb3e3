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
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

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


class DataConfig(_Model):
    source: Literal["synthetic", "shared"] = Field(
        "synthetic", description="embedded synthetic market, or real files from the data root"
    )
    root: Path | None = Field(None, description="data root for source: shared (else searched)")
    start: dt.date | None = None
    end: dt.date | None = None
    ffill_limit: int = Field(5, ge=0, description="max bars a signal series is carried forward")
    etns: Literal["actual", "simulated"] = Field(
        "actual",
        description="real ETN prices, or ETNs reconstructed from VIX futures (datasets <name>_sim; "
        "shared source only)",
    )
    synthetic: SyntheticConfig = SyntheticConfig()

    @model_validator(mode="after")
    def _order(self):
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"end {self.end} is not after start {self.start}")
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
    tearsheet: bool = Field(True, description="write the pyfolio returns tear sheet PNG")
    plots: bool = True


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
        return _strategy_params(self.strategy, self.user_strategy)

    @property
    def filter_params(self) -> tuple:
        return tuple(_filter_params(f) for f in self.filters)

    @property
    def plan(self):
        """The strategy's decision with its filters (what the executors evaluate)."""
        return DecisionPlan(self.spec, self.params, self.filter_params)

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
            node = raw
            keys = dotted.split(".")
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = value
        return config_from_mapping(raw, source=self.source_file, strategy=self.user_strategy)


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
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
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


def _raise_validation(exc: ValidationError, model, source, prefix=()) -> None:
    where = f"{source}: " if source else ""
    lines = [_describe_error(e, model, prefix) for e in exc.errors()]
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
            _, _, chain = parse_input(name)
        except ConfigError as exc:
            raise ConfigError(f"{where}{key}: {exc}") from None
        if chain.underlying not in assets:
            trades = " and ".join(repr(a) for a in assets)
            raise ConfigError(
                f"{where}{key}: {name} is read through the option-chain feed of its "
                f"underlying: chain {chain.name!r} has underlying {chain.underlying!r} but the "
                f"strategy trades {trades}; trade {chain.underlying!r} (as ivix_timing does) or "
                f"use a chain on {trades}"
            )


def read_yaml(path: str | Path, kind: str = "config", example: str = "configs/vratio.yaml"):
    """Parse one YAML file into a mapping, or raise a ConfigError naming the file (and the line
    for a syntax error) and pointing at ``example``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {kind} file not found (cwd {Path.cwd()})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
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
