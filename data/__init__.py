"""Market data: real-file loaders, the dataset catalogue and the embedded synthetic market."""
