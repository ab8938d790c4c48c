"""Silver layer: the cleansed, typed, identity-resolved model (being built: standardization first)."""
