"""Accounts: activation, sign-in with password + TOTP, sessions, recovery, password reset."""
