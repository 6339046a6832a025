"""Admin: staff accounts (create, role, disable, unlock, MFA reset)."""
