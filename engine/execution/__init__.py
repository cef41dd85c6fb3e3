"""Orders and fills: the one sizing rule (``sizing``), the backtrader adapters (``bt``), the
event-driven pieces shared by single and batched runs (``eventdriven``, ``batch``), the
vectorised executor (``vectorised``), the result and its metrics. May import inputs and below."""
