"""volbacktest: event-driven backtests of volatility strategies on backtrader.

The Python front door (the command line is ``volbacktest``; ``python -m volbacktest``)::

    import numpy as np
    import volbacktest as vb

    res = vb.run({"strategy": {"name": "vratio", "params": {"window": 20}}})
    res.metrics["sharpe"], res.equity, res.plot()        # a matplotlib Figure

    class Params(vb.StrategyParams):
        window: int = 10
        def assets(self): return ("xiv", "vxx")
        def inputs(self): return ("vix", "vix3m")

    @vb.strategy(params=Params)                          # not added to the registry
    def calm(inputs, p):
        calm = inputs["vix"] < inputs["vix3m"]
        return np.column_stack([calm, ~calm]).astype(float)

    res = vb.run({"strategy": {"name": "calm"}}, strategy=calm, data={"vix": my_vix_frame})

Names:

* :func:`run` one backtest (a config, a YAML path or a dict; ``data=`` the user's frames;
  ``strategy=`` a user strategy) -> :class:`RunResult` (``metrics``, ``returns``, ``equity``,
  ``positions``, ``transactions``, ``weights``, ``plot()``, ``tearsheet()``, ``save()``);
* :func:`sweep` a parameter grid or walk-forward (a sweep YAML path or dict) -> ``SweepOutcome``;
* :func:`strategy` (decorator), :class:`StrategyParams`, :class:`StrategySpec`: strategies of
  one's own;
* :func:`load_config`, :class:`BacktestConfig`: configs; :class:`Market`
  (``Market.from_frames``): a market from one's own frames;
* ``calculators``: the numerical kernels (``calculators.compute_vix``, ``implied_vol``,
  ``fit_rnd_chain``, ``fit_ou``, ...; the list is ``calculators.__all__``);
* :class:`ConfigError`, :class:`DataError`: what a bad config or bad data raises.

Everything is imported on first use: importing one module of the package (a sweep worker, a
calculator) does not load the engine.
"""

from __future__ import annotations

import importlib

_API = "volbacktest.engine.api"
_HOME = {  # name -> (module, attribute; None: the module itself)
    "run": (_API, "run"),
    "sweep": (_API, "sweep"),
    "strategy": (_API, "strategy"),
    "RunResult": (_API, "RunResult"),
    "StrategyParams": ("volbacktest.strategies.base", "StrategyParams"),
    "StrategySpec": ("volbacktest.strategies.base", "StrategySpec"),
    "load_config": ("volbacktest.engine.inputs.config", "load_config"),
    "BacktestConfig": ("volbacktest.engine.inputs.config", "BacktestConfig"),
    "Market": ("volbacktest.engine.inputs.market", "Market"),
    "calculators": ("volbacktest.engine.calculators", None),
    "ConfigError": ("volbacktest.engine.errors", "ConfigError"),
    "DataError": ("volbacktest.engine.errors", "DataError"),
}

__all__ = [
    "BacktestConfig",
    "ConfigError",
    "DataError",
    "Market",
    "RunResult",
    "StrategyParams",
    "StrategySpec",
    "calculators",
    "load_config",
    "run",
    "strategy",
    "sweep",
]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _HOME[name]
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
