"""The patient's health record (demographics now; visits, notes, readings and refills follow)."""
