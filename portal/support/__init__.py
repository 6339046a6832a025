"""Support console: find a patient, activation codes, unlock, MFA reset after an identity check."""
