"""The strategy registry: every strategy by name with its typed parameter model.

Registration is explicit (no import-time discovery). An unknown name raises a ConfigError that
lists the valid names with a did-you-mean suggestion.
"""

from __future__ import annotations

import difflib

from volbacktest.engine.errors import ConfigError

from . import cooper, ivix, pairs
from .base import StrategyParams, StrategySpec

REGISTRY: dict[str, StrategySpec] = {}


def register(spec: StrategySpec) -> StrategySpec:
    if spec.name in REGISTRY:
        raise ValueError(f"strategy {spec.name!r} is already registered")
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

__all__ = ["REGISTRY", "StrategyParams", "StrategySpec", "get", "names", "register"]
