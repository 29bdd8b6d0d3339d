"""The service's package: one module per pipeline stage, driven by `cli`."""
