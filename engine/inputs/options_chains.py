"""The embedded SPX-like option chains as a chain dataset with a tradable underlying (issue 13).

Importing this module registers chain dataset ``spx_options`` (underlying dataset ``spx`` of
the embedded US market, ``data.synthetic``): the SPX-like chains of ``data.synthetic_chains``
priced on that market's variance state, listing the A.M.-settled third-Friday monthlies up to
:data:`SPX_OPTION_PARAMS` ``monthly_days`` ahead on a fixed 5-point strike grid, and no weeklies
(the option strategies trade monthlies; a weekly listing would make a ten-year chain ten times
larger). The context's rate
is the market's constant T-bill rate (``collateral_rate: chain`` earns it). There is no shared
SPX chain history: ``data.source: shared`` is refused with that reason.

The 50ETF chains (``etf50_options``: embedded 50ETF-like and the real SSE closes) are
registered by ``engine.inputs.options_series`` with the tradable underlying ``etf50``.
"""

from __future__ import annotations

from volbacktest.data.synthetic import generate_market
from volbacktest.data.synthetic_chains import SpxChainParams, spx_chains
from volbacktest.engine.errors import ConfigError
from volbacktest.engine.inputs.chainseries import (
    ChainContext,
    ChainDatasetSpec,
    register_chain_dataset,
)

SPX_CHAIN = "spx_options"
# 5-point strikes throughout (the SPX listing near the money), from 2.5 SDs below to 2 above,
# monthlies up to 45 days out (the front and, from about two weeks before its expiry, the next):
# a fixed step keeps a held strike listed while it is within the range, and the chain of ten
# years stays small enough to generate in a few seconds (bench/bench_options.py)
SPX_OPTION_PARAMS = SpxChainParams(
    weekly_days=0, monthly_days=45, strikes_per_sd=1e6, strike_sd_down=2.5, strike_sd_up=2.0
)


def load_spx_synthetic(seed: int, start, end) -> tuple:
    """Embedded SPX-like monthly chains for ``seed`` over ``start..end`` (constant rate)."""
    chain = spx_chains(seed, start, end, SPX_OPTION_PARAMS)
    rate = generate_market(None, seed, start, end).params.tbill_rate
    key = ("synthetic", SPX_CHAIN, int(seed), str(start), str(end), SPX_OPTION_PARAMS)
    return chain, ChainContext(source="synthetic", rates=rate, extras={"cache_key": key})


def load_spx_shared(roots) -> tuple:
    raise ConfigError(
        f"{SPX_CHAIN}: the shared data holds no daily SPX option chain history (only the Cboe "
        "white-paper examples); use data.source: synthetic, or etf50_options for real chains"
    )


register_chain_dataset(
    ChainDatasetSpec(
        SPX_CHAIN,
        "spx",
        load_spx_shared,
        load_spx_synthetic,
        "embedded SPX-like monthly option chains (A.M. third-Friday expiries), tradable spx",
    )
)
