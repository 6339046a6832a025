"""Demo data built from real public FHIR samples (see data/PROVENANCE.md)."""
