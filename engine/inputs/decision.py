"""A strategy's decision with its filters: what the executors evaluate.

``DecisionPlan.weights(inputs)`` = the strategy's decision function, then each filter in order,
over the inputs' whole history (warm-up bars before the first traded bar included, see
``Market.warmup``), returning the traded bars' rows.
Both the backtrader executor (through ``TargetWeights``) and the vectorised executor call it, so
the signal and filter logic exist once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from volbacktest.engine.inputs.filters import FilterParams, apply_filters
from volbacktest.strategies.base import StrategyParams, StrategySpec


@dataclass(frozen=True)
class DecisionPlan:
    spec: StrategySpec
    params: StrategyParams
    filters: tuple[FilterParams, ...] = ()

    def assets(self) -> tuple[str, ...]:
        return tuple(self.params.assets())

    def inputs(self) -> tuple[str, ...]:
        names = list(self.params.inputs()) + [f.series() for f in self.filters]
        return tuple(dict.fromkeys(names))

    def weights(self, inputs: Mapping[str, np.ndarray], warmup: int = 0) -> np.ndarray:
        """Target weights for every bar of ``inputs``; with ``warmup`` > 0 the first ``warmup``
        rows of every input are history before the first traded bar (``Market.warmup``): the
        decision and filters run over the whole history and only the traded bars' rows are
        returned, so a rolling signal is warm on the first traded bar when history allows."""
        w = self.spec.weights({n: inputs[n] for n in self.params.inputs()}, self.params)
        w = apply_filters(w, inputs, self.filters) if self.filters else w
        return w[warmup:] if warmup else w

    def describe(self) -> str:
        text = self.params.describe()
        for f in self.filters:
            text += f"; filter: {f.describe()}"
        return text
