"""domadapt.pipeline."""
