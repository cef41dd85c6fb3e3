"""Strategy filters: one mechanism that gates any strategy's target weights with a daily flag.

A filter reads one input series (often derived from an option chain, e.g. the RND left-tail
probability or the fraction of anomalous contracts), turns it into a flag per bar, and on
flagged bars either

* ``block_entries``: no position may open or grow (exits and reductions still go through), or
* ``flatten``: every weight is set to zero.

Filters are applied to the decision function's output, in the order given, by a causal pass
(row t uses rows up to t only), so they keep the decision prefix-stable and point-in-time and the
same code serves the backtrader executor and the vectorised sweep executor.

Filter types register here with a typed parameter model; configs name them under ``filters:``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from volbacktest.engine.errors import ConfigError


class FilterParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["block_entries", "flatten"] = Field(
        "block_entries", description="on flagged bars: block new/larger positions, or go flat"
    )

    def series(self) -> str:
        """The input name the filter reads (a dataset or ``column@chain``)."""
        raise NotImplementedError

    def flags(self, values: np.ndarray) -> np.ndarray:
        """Boolean flag per bar from the series values (NaN → not flagged)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class FilterSpec:
    name: str
    params_model: type[FilterParams]
    summary: str


FILTERS: dict[str, FilterSpec] = {}
# modules whose import registers filter types (each capability appends its own)
REGISTERING_MODULES: list[str] = ["volbacktest.engine.inputs.options_series"]


def register_filter(spec: FilterSpec) -> FilterSpec:
    FILTERS[spec.name] = spec
    return spec


def get_filter(name: str) -> FilterSpec:
    import importlib

    for module in REGISTERING_MODULES:
        importlib.import_module(module)
    if name not in FILTERS:
        names = sorted(FILTERS)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown filter type {name!r}{hint}; valid types: {', '.join(names) or '(none)'}"
        )
    return FILTERS[name]


def gate(weights: np.ndarray, flagged: np.ndarray, action: str) -> np.ndarray:
    """Apply one filter's flags to a weights array (n_bars, n_assets); causal."""
    w = np.array(weights, dtype=np.float64, copy=True)
    flagged = np.asarray(flagged, dtype=bool)
    if action == "flatten":
        rows = flagged & ~np.isnan(w).all(axis=1)
        w[rows] = 0.0
        return w
    held = np.zeros(w.shape[1])  # effective weights of the previous bar
    for t in range(len(w)):
        row = w[t]
        if np.isnan(row).all():
            continue  # no decision: the executor holds cash, nothing to gate
        row = np.nan_to_num(row)
        if flagged[t]:
            same_side = np.sign(row) == np.sign(held)
            shrink = same_side & (np.abs(row) <= np.abs(held))
            row = np.where(shrink, row, np.where(same_side, held, 0.0))
        w[t] = row
        held = row
    return w


def apply_filters(
    weights: np.ndarray, inputs: Mapping[str, np.ndarray], filters: tuple[FilterParams, ...]
) -> np.ndarray:
    for f in filters:
        values = np.asarray(inputs[f.series()], dtype=np.float64)
        weights = gate(weights, f.flags(values), f.action)
    return weights


FlagFn = Callable[[np.ndarray], np.ndarray]


class ThresholdFilter(FilterParams):
    """A filter flagging bars where its series is above a threshold."""

    threshold: float

    def flags(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(values, nan=-np.inf) > self.threshold
