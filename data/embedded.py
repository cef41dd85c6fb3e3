"""The embedded synthetic market by dataset name: the generator of each name, built on demand.

Three independent generators make up the market a config gets with ``data.source: synthetic``:

* the US volatility market (``data.synthetic``): ``vix, vix3m, spx, vx1, vx2, xiv, vxx``;
* the 50ETF-like underlying of the embedded option chains (``data.synthetic_chains``): ``etf50``;
* the cointegrated pair of the OU strategies (``data.synthetic_pairs``): ``pair_a, pair_b``.

A run builds only the generators whose names its config uses: a VRatio run does not simulate the
50ETF path or the pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import MappingProxyType

import pandas as pd

from volbacktest.data.synthetic import market_frames
from volbacktest.data.synthetic_chains import etf50_frames
from volbacktest.data.synthetic_pairs import pair_frames
from volbacktest.engine.errors import ConfigError

FrameBuilder = Callable[..., dict[str, pd.DataFrame]]

GENERATORS: MappingProxyType[str, tuple[tuple[str, ...], FrameBuilder]] = MappingProxyType(
    {
        "us_volatility": (("vix", "vix3m", "spx", "vx1", "vx2", "xiv", "vxx"), market_frames),
        "etf50": (("etf50",), etf50_frames),
        "pair": (("pair_a", "pair_b"), pair_frames),
    }
)
GENERATOR_OF = MappingProxyType({n: g for g, (names, _) in GENERATORS.items() for n in names})


def embedded_names() -> tuple[str, ...]:
    """Every dataset name the embedded market provides."""
    return tuple(sorted(GENERATOR_OF))


def generator_of(name: str) -> str:
    """The generator that provides dataset ``name`` (ConfigError listing the names if none)."""
    if name not in GENERATOR_OF:
        raise ConfigError(
            f"dataset {name!r} is not in the synthetic market; it provides: "
            f"{', '.join(embedded_names())} (or set data.source: shared)"
        )
    return GENERATOR_OF[name]


def embedded_frames(names: Iterable[str], seed: int, start, end) -> dict[str, pd.DataFrame]:
    """Frames of ``names`` from the generators that provide them (each generator run once)."""
    names = list(dict.fromkeys(names))
    out: dict[str, pd.DataFrame] = {}
    for group in dict.fromkeys(generator_of(n) for n in names):
        frames = GENERATORS[group][1](seed=seed, start=str(start), end=str(end))
        out.update({n: frames[n] for n in names if GENERATOR_OF[n] == group})
    return out
