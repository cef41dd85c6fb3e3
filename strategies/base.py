"""The strategy contract: a typed parameter model plus a pure, point-in-time decision function.

A strategy's decision is written once, as ``decide(inputs, params) -> weights``:

* ``inputs`` maps dataset names (``"vix"``, ``"vix3m"``, ``"xiv"``, ...) to 1-D float arrays of
  closing values on a common calendar, oldest first;
* the result is a ``(n_bars, n_assets)`` array of target portfolio weights, row t being the target
  after observing bar t's close, columns ordered as ``params.assets()``. NaN means "no decision
  yet" (warm-up): the executor holds cash until the first decision.

The function must be causal and prefix-stable: row t depends only on ``inputs[: t + 1]`` and is
identical whether computed over the full history or over a prefix (use
``engine.calculators.rolling``). The backtrader executor (``engine.execution.bt``) reads the
rows bar by bar and the vectorised sweep executor evaluates the same function over a parameter
grid, so the signal logic exists once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

Inputs = Mapping[str, np.ndarray]


class StrategyParams(BaseModel):
    """Base of every strategy's parameter model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def assets(self) -> tuple[str, ...]:
        """Dataset names of the instruments the strategy trades (weights columns, in order)."""
        raise NotImplementedError

    def inputs(self) -> tuple[str, ...]:
        """Dataset names whose closes the decision function reads (may include assets)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line stating the rule with its parameters (goes into every report)."""
        return ", ".join(f"{k}={v}" for k, v in self.model_dump().items())


DecideFn = Callable[[Inputs, StrategyParams], np.ndarray]


@dataclass(frozen=True)
class StrategySpec:
    """A strategy: its name, parameter model and decision function (registered in
    ``volbacktest.strategies``, or a user's own from ``@volbacktest.strategy``)."""

    name: str
    params_model: type[StrategyParams]
    decide: DecideFn
    summary: str

    def make_params(self, values: Mapping | None = None) -> StrategyParams:
        return self.params_model(**(values or {}))

    def weights(self, inputs: Inputs, params: StrategyParams) -> np.ndarray:
        """Evaluate the decision function and check its output shape."""
        w = np.asarray(self.decide(inputs, params), dtype=np.float64)
        n = len(next(iter(inputs.values()))) if inputs else 0
        k = len(params.assets())
        if w.shape != (n, k):
            raise ValueError(
                f"strategy {self.name!r} returned weights of shape {w.shape}, expected ({n}, {k})"
            )
        return w


def one_hot(choice: np.ndarray, n_assets: int) -> np.ndarray:
    """Weights from an integer choice per bar: column ``choice`` gets 1, a choice of -1 means cash,
    NaN means no decision (the whole row NaN)."""
    choice = np.asarray(choice, dtype=np.float64)
    undecided = choice * 0.0  # NaN where no decision, 0 elsewhere
    w = np.empty((len(choice), n_assets))
    for j in range(n_assets):  # column by column: numpy is slow along a short inner axis
        np.add(choice == j, undecided, out=w[:, j])  # -1 (cash) matches no column
    return w
