"""YAML → typed, frozen configuration, validated once before anything runs.

``load_config(path)`` returns a :class:`BacktestConfig` or raises :class:`ConfigError` with one
message that names the file, the key path, the bad value, what is wrong and the valid choices
(did-you-mean for misspelt keys and strategy names). Nothing unvalidated reaches backtrader.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from volbacktest import strategies
from volbacktest.engine.errors import ConfigError
from volbacktest.strategies.base import StrategyParams


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CommissionConfig(_Model):
    percent: float = Field(
        0.0, ge=0.0, lt=0.1, description="fraction of traded value (0.001 = 10bp)"
    )
    per_share: float = Field(0.0, ge=0.0, description="currency per share traded")


class SlippageConfig(_Model):
    percent: float = Field(0.0, ge=0.0, lt=0.1, description="fill price moved against the order")


FillMode = Literal["next_close", "next_open", "same_close"]


class ExecutionConfig(_Model):
    fill: FillMode = Field(
        "next_close",
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
        return self.fill == "same_close"

    def fill_label(self) -> str:
        return (
            "same_close (LOOK-AHEAD: trades the close it observes)"
            if self.look_ahead
            else self.fill
        )


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
    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    strategy: StrategyConfig
    filters: tuple[FilterConfig, ...] = ()
    data: DataConfig = DataConfig()
    execution: ExecutionConfig = ExecutionConfig()
    report: ReportConfig = ReportConfig()
    source_file: Path | None = Field(None, exclude=True)

    @property
    def spec(self):
        return strategies.get(self.strategy.name)

    @property
    def params(self) -> StrategyParams:
        return _strategy_params(self.strategy)

    @property
    def filter_params(self) -> tuple:
        return tuple(_filter_params(f) for f in self.filters)

    @property
    def plan(self):
        """The strategy's decision with its filters (what the executors evaluate)."""
        from volbacktest.engine.inputs.decision import DecisionPlan

        return DecisionPlan(self.spec, self.params, self.filter_params)

    def resolved(self) -> dict:
        """The config with every default filled in (strategy params included), YAML-ready."""
        out = self.model_dump(mode="json", exclude={"source_file"})
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
        return config_from_mapping(raw, source=self.source_file)


def _strategy_params(sc: StrategyConfig) -> StrategyParams:
    return strategies.get(sc.name).make_params(sc.params)


def _filter_params(fc: FilterConfig):
    from volbacktest.engine.inputs.filters import get_filter

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
    if kind == "literal_error":
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


def config_from_mapping(raw: Mapping, source: Path | str | None = None) -> BacktestConfig:
    """Validate a mapping (already parsed YAML) into a :class:`BacktestConfig`."""
    where = f"{source}: " if source else ""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}the file must hold a mapping of keys (got {type(raw).__name__})")
    raw = dict(raw)
    if source is not None and "name" not in raw:
        raw["name"] = Path(str(source)).stem
    try:
        cfg = BacktestConfig(**raw, source_file=Path(source) if source else None)
    except ValidationError as exc:
        _raise_validation(exc, BacktestConfig, source)
    try:
        spec = strategies.get(cfg.strategy.name)
    except ConfigError as exc:
        raise ConfigError(f"{where}strategy.name: {exc}") from None
    try:
        spec.make_params(cfg.strategy.params)
    except ValidationError as exc:
        _raise_validation(exc, spec.params_model, source, prefix=("strategy", "params"))
    from volbacktest.engine.inputs.filters import get_filter

    for i, fc in enumerate(cfg.filters):
        try:
            model = get_filter(fc.type).params_model
        except ConfigError as exc:
            raise ConfigError(f"{where}filters.{i}.type: {exc}") from None
        try:
            _filter_params(fc)
        except ValidationError as exc:
            _raise_validation(exc, model, source, prefix=("filters", i))
    return cfg


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
