"""Helpers for the accounts tests: the activation journey through the real routes."""

from __future__ import annotations

from tests.helpers import post_form


def birth_fields(d, name: str = "birth_date") -> dict:
    return {f"{name}-month": str(d.month), f"{name}-day": str(d.day), f"{name}-year": str(d.year)}


def check_code(client, code: str, birth):
    """Step 1: code + birth date (memorable date fields)."""
    return post_form(client, "/activate", {"code": code, **birth_fields(birth)})


def choose_account(client, email: str, password: str):
    """Step 2: email + password."""
    return post_form(client, "/activate/account", {"email": email, "password": password})


def activate(client, code: str, birth, email: str, password: str):
    """Steps 1 and 2; returns the step-2 response (a redirect to the authenticator set-up on success)."""
    r = check_code(client, code, birth)
    if r.status_code != 302:
        return r
    return choose_account(client, email, password)
