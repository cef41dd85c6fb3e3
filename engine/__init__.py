"""Event-driven backtesting engine for volatility strategies, built on backtrader."""
