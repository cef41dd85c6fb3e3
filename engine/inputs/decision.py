"""A strategy's decision with its filters: what the executors evaluate.

``DecisionPlan.weights(inputs)`` = the strategy's decision function, then each filter in order.
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

    def weights(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        w = self.spec.weights({n: inputs[n] for n in self.params.inputs()}, self.params)
        return apply_filters(w, inputs, self.filters) if self.filters else w

    def describe(self) -> str:
        text = self.params.describe()
        for f in self.filters:
            text += f"; filter: {f.describe()}"
        return text
