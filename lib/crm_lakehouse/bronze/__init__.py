"""Bronze layer: raw source records as append-only Delta tables."""
