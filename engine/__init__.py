"""The engine, in layers; a module imports only from its own layer or the ones below it (a test,
``tests/test_architecture.py``, reads every import from the source and fails on an upward import
or a cycle):

==================  ============================================================================
``cli/``, ``api``   command lines (``volbacktest ...``) and the Python API behind ``volbacktest``
``sweep/``          parameter sweeps: spec, executors (vectorised, chunked, process pool, Dask),
                    store, overfitting statistics, adaptive search, walk-forward
``run/``            one backtest end to end (``runner``), its files (``report``, ``html``,
                    ``outputs``, ``provenance``), round trips and benchmarks, comparisons
``execution/``      orders and fills: the one sizing rule (``sizing``), the backtrader adapters
                    (``bt``, ``eventdriven``, ``batch``), the vectorised executor, the contract
                    executors (``instruments``, ``futures``, ``options``), the result
``inputs/``         what a strategy sees: the config, the market on one calendar (with warm-up),
                    the user's datasets, chain-derived series, filters, the decision plan
``strategies/``,    (top-level folders) decision functions with their parameter models; loaders,
``data/``           the dataset catalogue, the embedded market, calendars
``calculators/``    pure numerical kernels over arrays and frames: no files, no backtrader
``errors``,         exceptions and typed warnings; the process-wide caches
``caches``
==================  ============================================================================
"""
