"""The decision core: array kernels, the engine that applies them each round, the conditions it emits,
forecasting and early warnings with each sensor's learned behaviour, and the ISA-18.2 lifecycle.
Pure: no storage, network or web code (a contract in pyproject.toml)."""
