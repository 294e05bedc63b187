"""Password hashing (argon2id via argon2-cffi) and the password policy.

Production uses argon2-cffi's default cost (RFC 9106 low-memory profile); tests pass a low cost to
keep the suite fast. `verify_unknown()` spends the same time as a real verification, so a login
for a username that does not exist cannot be told apart by its answer time.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from api.auth.errors import PasswordPolicyError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # hashing a megabyte of "password" is a cheap denial of service


MIN_SCORE = 3  # zxcvbn: 0-4; 3 is "safely unguessable" (about 10^8 guesses and more)


@functools.cache
def _common_passwords() -> frozenset[str]:
    """The 30 000 most common passwords of public breaches, as zxcvbn ships them (lower case)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_policy(password: str, username: str) -> None:
    """Raise PasswordPolicyError unless the password is acceptable for this user: long enough, not
    the name, not one of the common passwords of public breaches, and not guessable by the patterns
    zxcvbn knows (1234567890, 88888888888, the name with a year, keyboard walks)."""
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"password must be at most {MAX_LENGTH} characters")
    if not password.strip():
        raise PasswordPolicyError("password must not be blank")
    if password.strip().casefold() == username.strip().casefold():
        raise PasswordPolicyError("password must not be the username")
    if password.strip().casefold() in _common_passwords():
        raise PasswordPolicyError("password is one of the most common passwords of public breaches")
    from zxcvbn import zxcvbn

    if zxcvbn(password[:100], user_inputs=[username])["score"] < MIN_SCORE:
        raise PasswordPolicyError(
            "password is too easy to guess (a sequence, a repeat, a keyboard walk, or the name with"
            " digits): use a few unrelated words or more varied characters"
        )


class PasswordHasher:
    """Hash and verify passwords; argon2-cffi's defaults unless a cost is given (tests)."""

    def __init__(self, time_cost: int | None = None, memory_cost: int | None = None):
        kwargs = {}
        if time_cost is not None:
            kwargs["time_cost"] = time_cost
        if memory_cost is not None:
            kwargs["memory_cost"] = memory_cost
        self._ph = _Argon2(**kwargs)
        self._dummy: str | None = None  # made on first use: hashing costs as much as a login

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        """Return True if the password matches the stored hash (False for a mismatch or a bad hash)."""
        if len(password) > MAX_LENGTH:
            return False
        try:
            return self._ph.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_unknown(self, password: str) -> None:
        """Spend one verification on a dummy hash (the username does not exist)."""
        if self._dummy is None:
            self._dummy = self._ph.hash("not a password: equalises the time of unknown-user logins")
        self.verify(self._dummy, password[:MAX_LENGTH])

    def needs_rehash(self, stored_hash: str) -> bool:
        """Return True if the hash was made with other parameters than this hasher's."""
        try:
            return self._ph.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
