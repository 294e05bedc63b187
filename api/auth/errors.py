"""The errors of authentication and user management.

AuthError                      base; the API turns each into a JSON answer (api/auth/router.py)
├── InvalidCredentials         wrong username or password, or a disabled account (one message for all)
├── AccountLocked              too many failed logins; `retry_after_s` says for how long
├── UnknownUser                no user by that name (user management, never at login)
├── UserExists                 create_user with a name already taken
├── UnknownToken               no such API token (or not the caller's)
├── InvalidUserData            a username, display name, scope or token name is not acceptable
│   └── PasswordPolicyError    the proposed password breaks the policy (api/auth/passwords.py)
└── LastAdmin                  the change would leave no enabled admin with all sites
"""

from __future__ import annotations


class AuthError(Exception):
    """Base of authentication and user-management errors; the message is safe to show the caller."""


class InvalidCredentials(AuthError):
    """Wrong username or password; the message does not say which."""

    def __init__(self, msg: str = "invalid username or password"):
        super().__init__(msg)


class AccountLocked(AuthError):
    """Too many failed logins for this username; retry after `retry_after_s` seconds."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"too many failed logins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class UnknownUser(AuthError):
    """No user by that name."""


class UserExists(AuthError):
    """A user by that name already exists."""


class UnknownToken(AuthError):
    """No such API token."""


class InvalidUserData(AuthError, ValueError):
    """A username, display name, scope or token name is not acceptable."""


class PasswordPolicyError(InvalidUserData):
    """The proposed password breaks the policy; the message says which rule."""


class LastAdmin(AuthError):
    """The change would leave no enabled admin who sees all sites."""
