"""Pure numerical kernels (numpy/scipy/pandas only; never import backtrader here)."""
