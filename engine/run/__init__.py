"""One backtest end to end (``runner.run_backtest``), its files (``report``) and the HTML
comparison of several (``compare``). May import execution and below."""
