#!/usr/bin/env python
"""Run volatility-strategy backtests from YAML configs.

python run_backtest.py configs/vratio.yaml
"""

import sys

from volbacktest.engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
