"""domadapt.pseudo."""
