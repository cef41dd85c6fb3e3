"""Sweep specification: a normal backtest config plus a ``sweep:`` block (and ``split:``).

.. code-block:: yaml

    name: vratio_grid
    strategy: {name: vratio}
    sweep:
      grid:
        window: {start: 2, end: 41}          # inclusive range, step 1
        band: [0.0, 0.01, 0.02, 0.03, 0.05]  # or a list
        execution.fill: [next_close]         # a dotted key sets any config path
      constraints:                           # declarative, never eval'd
        - {lhs: window, op: ">=", value: 3}
      rank: sharpe                           # or {metric: sharpe, direction: max}
    split:                                   # optional walk-forward
      in_sample_end: 2013-02-28              # or rolling: {train: 504, test: 126}

A key without a dot names a strategy parameter (``window`` is ``strategy.params.window``).
``sweep.random`` draws ``n`` combinations with a seed, from distributions of its own
(``random.params``) or, without them, from the grid (without replacement).

Every combination is validated as a full config; its run id is a hash of its resolved config
(``name`` and ``report`` excluded: they do not change results), so a combination has the same id
in every sweep, executor and resume. The base config and each swept value are validated when
the file is loaded, with messages in the style of ``inputs.config``: file, key path, bad
value, valid choices.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import itertools
import json
import math
import operator
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from volbacktest.engine.errors import ConfigError
from volbacktest.engine.inputs.config import (
    BacktestConfig,
    _raise_validation,
    config_from_mapping,
    read_yaml,
    set_path,
)
from volbacktest.engine.run.provenance import config_hash
from volbacktest.strategies.base import StrategySpec

from .metrics import LOWER_IS_BETTER, METRIC_NAMES

RUN_ID_HEX = 20  # 80-bit run ids: collision-free for any sweep size seen in practice
MAX_COMBINATIONS = 5_000_000
_OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeAxis(_Model):
    """Values ``start, start + step, ...`` up to and including ``end``."""

    start: float
    end: float
    step: float = Field(1, gt=0)

    @model_validator(mode="after")
    def _order(self):
        if self.end < self.start:
            raise ValueError(f"end {self.end:g} is before start {self.start:g}; swap them")
        if (self.end - self.start) / self.step > MAX_COMBINATIONS:
            raise ValueError(f"range has more than {MAX_COMBINATIONS} values; raise step")
        return self

    def values(self) -> list:
        n = int(math.floor((self.end - self.start) / self.step + 1e-9)) + 1
        vals = [self.start + i * self.step for i in range(n)]
        if all(float(x).is_integer() for x in (self.start, self.end, self.step)):
            return [int(round(v)) for v in vals]
        return [round(v, 12) for v in vals]


class Distribution(_Model):
    """One randomly drawn parameter: ``choices``, or ``low``..``high`` (inclusive for int)."""

    kind: Literal["int", "uniform", "log_uniform", "choice"] = "uniform"
    low: float | None = None
    high: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "choice":
            if not self.choices:
                raise ValueError("kind choice needs a non-empty `choices` list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"kind {self.kind} needs `low` and `high`")
        if self.high < self.low:
            raise ValueError(f"high {self.high:g} is below low {self.low:g}")
        if self.kind == "log_uniform" and self.low <= 0:
            raise ValueError("log_uniform needs low > 0")
        return self

    def draw(self, rng: np.random.Generator):
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.kind == "log_uniform":
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def bounds(self) -> list:
        if self.kind == "choice":
            return list(self.choices)
        lo, hi = self.low, self.high
        return [int(lo), int(hi)] if self.kind == "int" else [lo, hi]


class RandomSpec(_Model):
    n: int = Field(..., ge=1, le=MAX_COMBINATIONS, description="combinations to draw")
    seed: int = Field(..., ge=0, description="seed of numpy.random.default_rng")
    params: dict[str, Distribution] = Field(
        default_factory=dict, description="distributions; empty = sample the grid"
    )


class SearchSpec(_Model):
    """Adaptive search over the sweep's parameter space (the grid's values or the
    distributions of ``random.params``), under the same constraints."""

    method: Literal["optuna"] = "optuna"
    trials: int = Field(..., ge=1, le=1_000_000, description="trials asked of the sampler")
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = Field(0, ge=0, description="seed of the sampler (a search replays exactly)")


class Constraint(_Model):
    """``lhs op rhs`` (another parameter) or ``lhs op value`` (a literal); never evaluated."""

    lhs: str
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    rhs: str | None = Field(None, description="name of another parameter")
    value: Any = Field(None, description="a literal to compare with")

    @model_validator(mode="after")
    def _one_side(self):
        if (self.rhs is None) == (self.value is None):
            raise ValueError("give exactly one of `rhs` (a parameter name) or `value`")
        return self

    def describe(self) -> str:
        other = self.rhs if self.rhs is not None else repr(self.value)
        return f"{self.lhs} {self.op} {other}"


class RankSpec(_Model):
    metric: str = "sharpe"
    direction: Literal["max", "min"] | None = None

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in METRIC_NAMES:
            close = difflib.get_close_matches(v, METRIC_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown metric {v!r}{hint}; valid choices: {', '.join(METRIC_NAMES)}"
            )
        return v

    @property
    def maximise(self) -> bool:
        if self.direction is not None:
            return self.direction == "max"
        return self.metric not in LOWER_IS_BETTER

    def describe(self) -> str:
        return f"{'max' if self.maximise else 'min'} {self.metric}"


class SweepSpec(_Model):
    grid: dict[str, list[Any] | RangeAxis] = Field(default_factory=dict)
    random: RandomSpec | None = None
    search: SearchSpec | None = None
    constraints: list[Constraint] = Field(default_factory=list)
    rank: RankSpec = RankSpec()
    top: int = Field(3, ge=0, le=100, description="best runs re-run event-driven and reported")
    executor: Literal["vectorised", "local", "dask"] = "vectorised"
    workers: int | None = Field(None, ge=1, le=256)
    chunk_size: int = Field(256, ge=1, le=100_000, description="runs per fast-path array pass")
    batch_size: int = Field(
        5, ge=1, le=1000, description="runs per event-driven backtrader pass (pool, Dask)"
    )
    start_method: Literal["forkserver", "spawn", "fork"] | None = Field(
        None, description="process start method of the local pool (default: forkserver/spawn)"
    )
    store_returns: Literal["top", "all", "none"] = Field(
        "top",
        description="daily return series kept (Parquet): the `top` best runs', every run's, none",
    )
    drift_tolerance: float = Field(
        1e-9, gt=0.0, description="max relative equity difference fast vs event-driven"
    )

    @field_validator("rank", mode="before")
    @classmethod
    def _rank_shorthand(cls, v):
        return {"metric": v} if isinstance(v, str) else v

    @field_validator("grid", mode="before")
    @classmethod
    def _axes(cls, v):
        if not isinstance(v, Mapping):
            return v
        out = {}
        for key, axis in v.items():
            if isinstance(axis, list | tuple):
                if not axis:
                    raise ValueError(f"grid axis {key!r} is an empty list")
                out[key] = list(axis)
            elif isinstance(axis, Mapping):
                out[key] = axis
            else:
                raise ValueError(
                    f"grid axis {key!r} must be a list of values or a range "
                    f"{{start, end, step}} (got {axis!r}); a single value belongs in the base "
                    "config"
                )
        return out

    @model_validator(mode="after")
    def _source(self):
        if self.random is not None and self.random.params and self.grid:
            raise ValueError(
                "use either sweep.grid or sweep.random.params; sweep.random without params "
                "samples the grid"
            )
        if not self.grid and (self.random is None or not self.random.params):
            raise ValueError("nothing to sweep: give sweep.grid or sweep.random.params")
        if self.search is not None and self.random is not None and not self.random.params:
            raise ValueError(
                "sweep.search explores the grid itself; drop sweep.random (or give "
                "random.params as the search's distributions)"
            )
        if self.search is not None and self.executor != "vectorised":
            raise ValueError(
                "sweep.search runs its trials one after another on the fast path: use "
                "executor: vectorised"
            )
        return self


class RollingSplit(_Model):
    train: int = Field(..., ge=2, description="in-sample bars per window")
    test: int = Field(..., ge=1, description="out-of-sample bars per window")
    step: int | None = Field(None, ge=1, description="bars between windows (default: test)")
    anchored: bool = Field(False, description="in-sample windows all start at the first bar")


class SplitSpec(_Model):
    in_sample_end: dt.date | None = Field(None, description="last in-sample date (fixed split)")
    rolling: RollingSplit | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.in_sample_end is None) == (self.rolling is None):
            raise ValueError("give exactly one of in_sample_end or rolling")
        return self


# --------------------------------------------------------------------------- the plan
def param_path(name: str) -> str:
    """A swept key as a dotted config path (plain names are strategy parameters)."""
    return name if "." in name else f"strategy.params.{name}"


def _get_path(raw: Mapping, dotted: str):
    node: Any = raw
    for k in dotted.split("."):
        if not isinstance(node, Mapping) or k not in node:
            raise KeyError(dotted)
        node = node[k]
    return node


def run_id_of(resolved: Mapping) -> str:
    """Hash of a resolved config (``name`` and ``report`` excluded: they do not change results)."""
    body = {k: v for k, v in resolved.items() if k not in ("name", "report")}
    return config_hash(body)[:RUN_ID_HEX]


@dataclass(frozen=True)
class Combo:
    """One combination: its position, run id, swept values and validated config."""

    index: int
    run_id: str
    params: dict
    config: BacktestConfig


@dataclass(frozen=True)
class SweepPlan:
    base: BacktestConfig
    spec: SweepSpec
    split: SplitSpec | None = None
    source: Path | None = None

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def axes(self) -> dict[str, list]:
        """Swept names and their values (grid values, or random bounds/choices)."""
        if self.spec.grid:
            return {
                k: (v.values() if isinstance(v, RangeAxis) else list(v))
                for k, v in self.spec.grid.items()
            }
        return {k: d.bounds() for k, d in self.spec.random.params.items()}

    @property
    def is_grid(self) -> bool:
        return bool(self.spec.grid) and self.spec.random is None

    # -- combinations ------------------------------------------------------------------------
    def _assignments(self) -> Iterator[dict]:
        axes = self.axes
        names = list(axes)
        rnd = self.spec.random
        if rnd is None:
            for values in itertools.product(*axes.values()):
                yield dict(zip(names, values, strict=True))
            return
        rng = np.random.default_rng(rnd.seed)
        if rnd.params:
            for _ in range(rnd.n):
                yield {k: d.draw(rng) for k, d in rnd.params.items()}
            return
        sizes = [len(v) for v in axes.values()]
        total = math.prod(sizes)
        picks = np.sort(rng.choice(total, size=min(rnd.n, total), replace=False))
        for flat in picks.tolist():
            idx = []
            for size in reversed(sizes):
                flat, i = divmod(flat, size)
                idx.append(i)
            idx.reverse()
            yield {k: axes[k][i] for k, i in zip(names, idx, strict=True)}

    def _lookup(self, name: str, values: Mapping):
        if name in values:
            return values[name]
        return _get_path(self._base_resolved, param_path(name))

    def _keep(self, values: Mapping) -> bool:
        for c in self.spec.constraints:
            lhs = self._lookup(c.lhs, values)
            rhs = self._lookup(c.rhs, values) if c.rhs is not None else c.value
            try:
                if not _OPS[c.op](lhs, rhs):
                    return False
            except TypeError:
                raise ConfigError(
                    f"{self._where}sweep.constraints: cannot compare {lhs!r} {c.op} {rhs!r} "
                    f"({c.describe()}); compare parameters of the same type"
                ) from None
        return True

    @property
    def _where(self) -> str:
        return f"{self.source}: " if self.source else ""

    @property
    def _base_resolved(self) -> dict:
        cached = self.__dict__.get("_resolved_cache")
        if cached is None:
            cached = self.base.resolved()
            object.__setattr__(self, "_resolved_cache", cached)
        return cached

    def resolved_for(self, values: Mapping, overrides: Mapping | None = None) -> dict:
        """The base config with ``values`` (and ``overrides``) set: the mappings along each set
        path are copied, the rest is shared with the base (nothing downstream mutates it; a
        deep copy per combination cost as much as simulating it on the fast path)."""
        raw = dict(self._base_resolved)
        for k, v in {**(overrides or {}), **values}.items():
            set_path(raw, param_path(k), v)
        return raw

    def config_for(
        self, values: Mapping, overrides: Mapping | None = None
    ) -> tuple[str, BacktestConfig]:
        """Run id and validated config of one combination (``overrides``: extra dotted paths
        applied to every combination, e.g. a walk-forward window's dates)."""
        raw = self.resolved_for(values, overrides)
        rid = run_id_of(raw)
        raw["name"] = f"{self.base.name}-{rid[:8]}"
        try:
            cfg = config_from_mapping(raw, strategy=self.base.user_strategy)
        except ConfigError as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise ConfigError(f"{self._where}sweep combination ({shown}): {exc}") from None
        return rid, cfg

    def label_for(self, values: Mapping) -> str:
        """A readable config name for one combination, e.g. ``vratio_grid.window-17.band-0.05``."""
        parts = [self.base.name]
        for k, v in values.items():
            text = re.sub(r"[^A-Za-z0-9_.\-]+", "_", f"{k.split('.')[-1]}-{v}")
            parts.append(text)
        return ".".join(parts)

    @property
    def _draws_params(self) -> bool:
        return self.spec.random is not None and bool(self.spec.random.params)

    def iter_combos(self, overrides: Mapping | None = None) -> Iterator[Combo]:
        """Every kept combination in sweep order, built lazily: memory does not grow with the
        number of combinations (grid points are distinct by construction, :meth:`check`
        rejects repeated axis values; random draws are de-duplicated by run id, keeping one
        integer per draw)."""
        seen: set[int] | None = set() if self._draws_params else None
        index = 0
        for values in self._assignments():
            if not self._keep(values):
                continue
            rid, cfg = self.config_for(values, overrides)
            if seen is not None:
                digest = int(rid, 16)
                if digest in seen:
                    continue
                seen.add(digest)
            yield Combo(index, rid, dict(values), cfg)
            index += 1

    def count(self) -> int:
        """Number of combinations after constraints and de-duplication."""
        if self.spec.random is None and not self.spec.constraints:
            return math.prod(len(v) for v in self.axes.values())
        seen: set[int] | None = set() if self._draws_params else None
        n = 0
        for values in self._assignments():
            if not self._keep(values):
                continue
            if seen is not None:
                key = hash(json.dumps(values, sort_keys=True, default=str))
                if key in seen:
                    continue
                seen.add(key)
            n += 1
        return n

    def fingerprint(self) -> str:
        """Identity of the sweep (base config and spec): a store belongs to one sweep."""
        body = {
            "base": {k: v for k, v in self._base_resolved.items() if k != "report"},
            "sweep": self.spec.model_dump(
                mode="json",
                exclude={  # how it runs, not what it finds (more search trials continue one)
                    "executor": True,
                    "workers": True,
                    "top": True,
                    "chunk_size": True,
                    "batch_size": True,
                    "start_method": True,
                    "store_returns": True,
                    "search": {"trials"},
                },
            ),
            "split": self.split.model_dump(mode="json") if self.split else None,
        }
        text = json.dumps(body, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:RUN_ID_HEX]

    # -- checks at load time -------------------------------------------------------------------
    def check(self) -> SweepPlan:
        """Validate each swept value against the base config, every constraint name, and that
        the sweep has at least one and not too many combinations."""
        self._check_constraint_names()
        self._check_axes()
        if self.spec.random is None and math.prod(len(v) for v in self.axes.values()) > (
            MAX_COMBINATIONS
        ):
            raise ConfigError(
                f"{self._where}sweep.grid: more than {MAX_COMBINATIONS} combinations; "
                "use sweep.random to sample the grid"
            )
        if self.count() == 0:
            shown = "; ".join(c.describe() for c in self.spec.constraints)
            raise ConfigError(
                f"{self._where}sweep.constraints: no combination satisfies {shown}; "
                "relax a constraint or widen the grid"
            )
        return self

    def _check_constraint_names(self) -> None:
        known = set(self.axes)
        base_params = set(self._base_resolved["strategy"]["params"])
        for c in self.spec.constraints:
            for name in (c.lhs, c.rhs):
                if name is None or name in known:
                    continue
                try:
                    _get_path(self._base_resolved, param_path(name))
                except KeyError:
                    valid = sorted(known | base_params)
                    close = difflib.get_close_matches(name, valid, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ConfigError(
                        f"{self._where}sweep.constraints: unknown parameter {name!r}{hint} in "
                        f"{c.describe()!r}; valid names: {', '.join(valid)}"
                    ) from None

    def _check_axes(self) -> None:
        block = "grid" if self.spec.grid else "random.params"
        for name, values in self.axes.items():
            if self.spec.grid:
                shown = [json.dumps(v, default=str) for v in values]
                dupes = sorted({v for v in shown if shown.count(v) > 1})
                if dupes:
                    raise ConfigError(
                        f"{self._where}sweep.grid.{name}: value {dupes[0]} appears more than "
                        "once; list each value once"
                    )
            for v in values:
                try:
                    config_from_mapping(
                        self.resolved_for({name: v}), strategy=self.base.user_strategy
                    )
                except ConfigError as exc:
                    raise ConfigError(
                        f"{self._where}sweep.{block}.{name}: value {v!r} is not valid: {exc}"
                    ) from None


# --------------------------------------------------------------------------- loading
def _validate_block(model: type[BaseModel], raw, key: str, source):
    if not isinstance(raw, Mapping):
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}{key}: must be a mapping (got {raw!r})")
    try:
        return model(**raw)
    except ValidationError as exc:
        _raise_validation(exc, model, source, prefix=(key,))


def plan_from_mapping(
    raw: Mapping, source: Path | str | None = None, *, strategy: StrategySpec | None = None
) -> SweepPlan:
    """Split ``sweep:``/``split:`` off a mapping, validate the rest as a backtest config
    (``strategy``: a user's strategy not in the registry, as in ``config_from_mapping``; only
    the in-process vectorised executor can run it)."""
    where = f"{source}: " if source else ""
    raw = dict(raw)
    sweep_raw = raw.pop("sweep", None)
    split_raw = raw.pop("split", None)
    if sweep_raw is None:
        raise ConfigError(
            f"{where}sweep: required block is missing; a sweep file is a backtest config plus "
            "`sweep:` (see configs/sweeps/vratio_grid.yaml)"
        )
    base = config_from_mapping(raw, source=source, strategy=strategy)
    spec = _validate_block(SweepSpec, sweep_raw, "sweep", source)
    split = None if split_raw is None else _validate_block(SplitSpec, split_raw, "split", source)
    src = Path(source) if source else None
    return SweepPlan(base, spec, split, src).check()


def load_sweep(path: str | Path) -> SweepPlan:
    """Read and validate a sweep YAML file."""
    path = Path(path)
    return plan_from_mapping(
        read_yaml(path, "sweep", "configs/sweeps/vratio_grid.yaml"), source=path
    )
