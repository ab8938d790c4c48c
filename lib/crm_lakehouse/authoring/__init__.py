"""Help for writing a source YAML: draft one from a file (``suggest``), try one out (``preview``)."""
