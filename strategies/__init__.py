"""The strategy registry: every strategy by name with its typed parameter model.

Registration is explicit (no import-time discovery). An unknown name raises a ConfigError that
lists the valid names with a did-you-mean suggestion. Registering a name again replaces the entry
when the new decision function is the same definition (same module and qualified name: a re-run
notebook cell or a reloaded module) and raises for a different strategy under that name.

A strategy of one's own need not be registered at all: ``volbacktest.strategy`` makes a
:class:`StrategySpec` that ``volbacktest.run(..., strategy=spec)`` uses for that run only.
"""

from __future__ import annotations

import difflib

from volbacktest.engine.errors import ConfigError

from . import cooper, ivix, options_income, pairs, vx
from .base import StrategyParams, StrategySpec

REGISTRY: dict[str, StrategySpec] = {}


def _definition(spec: StrategySpec) -> tuple[str, str] | None:
    """Where the decision function is defined (module, qualified name), if it says."""
    module = getattr(spec.decide, "__module__", None)
    qualname = getattr(spec.decide, "__qualname__", None)
    return (module, qualname) if module and qualname else None


def register(spec: StrategySpec) -> StrategySpec:
    """Add ``spec`` under ``spec.name``. A name already registered is replaced when the new
    decision function has the same module and qualified name (the same definition, run again);
    a different strategy under an existing name raises ValueError."""
    old = REGISTRY.get(spec.name)
    if old is not None and old is not spec:
        where = _definition(old)
        if where is None or where != _definition(spec):
            shown = ".".join(where) if where else repr(old.decide)
            raise ValueError(
                f"strategy {spec.name!r} is already registered (decision function {shown}); "
                "choose another name"
            )
    REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> StrategySpec:
    try:
        return REGISTRY[name]
    except KeyError:
        names = sorted(REGISTRY)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown strategy {name!r}{hint}; valid strategies: {', '.join(names)}"
        ) from None


def names() -> list[str]:
    return sorted(REGISTRY)


def trades_futures(spec: StrategySpec) -> bool:
    """True when the strategy's default columns are VIX futures roles (it needs ``futures:``)."""
    assets = spec.make_params().assets()
    return bool(assets) and all(vx.is_futures_role(a) for a in assets)


def trades_options(spec: StrategySpec) -> bool:
    """True for an options strategy (its params say so; it needs an ``options:`` section)."""
    return getattr(spec.params_model, "instrument", None) == options_income.INSTRUMENT


def share_names() -> list[str]:
    """Registered strategies that trade datasets (shares, ETNs) on the share executors."""
    return [
        n for n in names() if not trades_futures(REGISTRY[n]) and not trades_options(REGISTRY[n])
    ]


def options_names() -> list[str]:
    """Registered strategies that trade listed options (configs with ``options:``)."""
    return [n for n in names() if trades_options(REGISTRY[n])]


def futures_names() -> list[str]:
    """Registered strategies that trade VIX futures contracts (configs with ``futures:``)."""
    return [n for n in names() if trades_futures(REGISTRY[n])]


register(
    StrategySpec(
        "buy_and_hold",
        cooper.BuyHoldParams,
        cooper.buy_and_hold,
        "hold one ETN throughout (Cooper's benchmark: XIV)",
    )
)
register(
    StrategySpec(
        "vratio",
        cooper.VRatioParams,
        cooper.vratio,
        "VIX term-structure ratio: contango → XIV, backwardation → VXX",
    )
)
register(
    StrategySpec(
        "vrp",
        cooper.VRPParams,
        cooper.vrp,
        "volatility risk premium: VIX above SPX realised vol → XIV, else VXX",
    )
)
register(
    StrategySpec(
        "roll_yield",
        cooper.RollYieldParams,
        cooper.roll_yield,
        "front VIX future vs spot: contango → XIV, backwardation → VXX",
    )
)
register(
    StrategySpec(
        "momentum",
        cooper.MomentumParams,
        cooper.momentum,
        "best trailing return among the ETNs if positive, else cash",
    )
)
register(
    StrategySpec(
        "stdlvix",
        cooper.StdLVixParams,
        cooper.stdlvix,
        "VRatio, holding XIV only while the stdev of log VIX is low",
    )
)
register(
    StrategySpec(
        "ou_pairs",
        pairs.OUPairsParams,
        pairs.ou_pairs,
        "optimal OU pairs weight h* (Mudchanatongsuk-Primbs-Wong 2008), rolling MLE, capped",
    )
)
register(
    StrategySpec(
        "zscore_pairs",
        pairs.ZScorePairsParams,
        pairs.zscore_pairs,
        "classic z-score threshold rule on the log spread of two legs (comparison)",
    )
)
register(
    StrategySpec(
        "ivix_timing",
        ivix.IVIXTimingParams,
        ivix.ivix_timing,
        "50ETF timed by the iVIX against its moving average (long below, flat above)",
    )
)

register(
    StrategySpec(
        "vx_inverse_replica",
        vx.InverseReplicaParams,
        vx.vx_inverse_replica,
        "VIX futures: -1x the S&P short-term futures index, rolled daily (needs futures:)",
    )
)
register(
    StrategySpec(
        "vx_basis",
        vx.BasisParams,
        vx.vx_basis,
        "VIX futures basis: short F1 when (F1-VIX)/days > 0.10, long below -0.10 (needs futures:)",
    )
)
register(
    StrategySpec(
        "vx_roll_yield",
        vx.FuturesRollYieldParams,
        vx.vx_roll_yield,
        "Cooper's roll yield on futures: contango short, backwardation long (needs futures:)",
    )
)
register(
    StrategySpec(
        "put_write",
        options_income.PutWriteParams,
        options_income.option_program,
        "options: sell the one-month ATM put each roll, cash-collateralised (Cboe PUT rule)",
    )
)
register(
    StrategySpec(
        "covered_call",
        options_income.CoveredCallParams,
        options_income.option_program,
        "options: hold the underlying, sell the one-month call at or above it (Cboe BXM rule)",
    )
)
register(
    StrategySpec(
        "short_strangle",
        options_income.ShortStrangleParams,
        options_income.option_program,
        "options: sell a delta-chosen put and call each roll, optional daily delta hedge",
    )
)

__all__ = [
    "REGISTRY",
    "StrategyParams",
    "StrategySpec",
    "futures_names",
    "options_names",
    "get",
    "names",
    "register",
    "share_names",
    "trades_futures",
    "trades_options",
]
