#!/usr/bin/env python
"""Run volatility-strategy backtests from YAML configs: the ``volbacktest`` command line from a
source checkout (the same as ``volbacktest ...`` or ``python -m volbacktest ...``).

python run_backtest.py configs/vratio.yaml
python run_backtest.py --help          # every command: run, compare, sweep, vix, futures, ...
"""

import sys

from volbacktest.engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
