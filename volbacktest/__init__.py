"""volbacktest: event-driven backtests of volatility strategies on backtrader."""
