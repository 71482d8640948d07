"""Model output layouts: one module per detector family, tried in turn by :mod:`.registry`."""
