"""What a strategy sees: the validated config (``config``), the market on one calendar
(``market``), series computed from option chains (``chainseries``, ``options_series``), filters
and the decision plan (``decision``). May import strategies, data, calculators, errors, caches."""
