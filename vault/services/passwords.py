"""Password rules and hashing for web sign-in (argon2id through argon2-cffi)."""

from __future__ import annotations

import re
import threading
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vault.errors import BadRequest

MIN_LENGTH = 12
MAX_LENGTH = 1024

# argon2-cffi's defaults are the RFC 9106 "second recommended" parameters (argon2id, 64 MiB,
# three passes), which take tens of milliseconds here: slow for a guesser, quick for a person.
HASHER = PasswordHasher()
# Each hash or check holds 64 MiB for its tenth of a second; sign-in is open to anyone, so
# only a few run at once and the rest wait their turn instead of multiplying the memory.
_HASHING = threading.BoundedSemaphore(4)


@cache
def _dummy_hash() -> str:
    """A hash of a password nobody has, verified when the submitted user name is unknown, so
    that a sign-in takes the same time whether the user exists or not.

    Made once, not at import: hashing costs a tenth of a second and 64 MiB, which every CLI
    command importing the services would otherwise pay.  The server makes it as it starts
    (``prepare``), so that not even the first unknown name costs more than a known one.
    """
    return HASHER.hash("kinko-no-such-user-" + "x" * 20)


def prepare() -> None:
    _dummy_hash()


# Words that make up the passwords people pick first.  A password is refused when, lowercased,
# with digits, punctuation and spaces taken away, nothing but one of these (or repetitions of
# it) is left: "Password1234!", "qwerty123456", "kinkokinko2026".
_COMMON_WORDS = frozenset(
    [
        "password",
        "passwort",
        "psswrd",
        "passwrd",
        "pssword",
        "pass",
        "qwerty",
        "qwertz",
        "azerty",
        "asdf",
        "asdfgh",
        "asdfghjkl",
        "zxcvbn",
        "zxcvbnm",
        "qwertyuiop",
        "qazwsx",
        "qazwsxedc",
        "wsx",
        "edc",
        "zaq",
        "zaqwsx",
        "letmein",
        "welcome",
        "admin",
        "administrator",
        "root",
        "login",
        "master",
        "monkey",
        "dragon",
        "football",
        "baseball",
        "soccer",
        "hockey",
        "superman",
        "batman",
        "iloveyou",
        "trustno",
        "princess",
        "sunshine",
        "shadow",
        "starwars",
        "whatever",
        "freedom",
        "changeme",
        "secret",
        "hello",
        "hellokitty",
        "abc",
        "abcdef",
        "abcdefg",
        "abcdefgh",
        "abcd",
        "google",
        "computer",
        "internet",
        "summer",
        "winter",
        "spring",
        "autumn",
        "kinko",
        "vault",
        "procurement",
        "tender",
        "government",
        "office",
        "user",
        "guest",
        "test",
        "testing",
        "default",
        "sakura",
        "tokyo",
        "japan",
        "nihon",
        "nippon",
    ]
)
_FILLER = re.compile(r"[\d\W_]+", re.UNICODE)
_KEYBOARD_RUNS = ("1234567890", "0987654321", "qwertyuiop", "asdfghjkl", "zxcvbnm", "abcdefghij")


def _only_common(password: str) -> bool:
    """Whether the password is a well-known one, or one of them with digits tacked on."""
    lowered = password.lower()
    if len(set(lowered)) <= 2:
        return True  # "aaaaaaaaaaaa", "abababababab", "111111111111"
    if any(lowered in run * 3 for run in _KEYBOARD_RUNS):
        return True  # "123456789012", "qwertyuiopqw"
    letters = _FILLER.sub("", lowered)
    if not letters:
        return True  # digits and punctuation only: a date, a phone number
    for word in _COMMON_WORDS:
        repeats, rest = divmod(len(letters), len(word))
        if repeats and not rest and letters == word * repeats:
            return True
    return False


def check_new_password(user_name: str, password: str, confirm: str) -> None:
    """Refuse a password that is too short, the user's own name, or a well-known one."""
    if password != confirm:
        raise BadRequest("the two passwords differ", code="password_mismatch")
    if len(password) < MIN_LENGTH:
        raise BadRequest(
            f"the password must be at least {MIN_LENGTH} characters", code="password_too_short"
        )
    if len(password) > MAX_LENGTH:
        raise BadRequest(
            f"the password must be at most {MAX_LENGTH} characters", code="password_too_long"
        )
    name = user_name.lower()
    stripped = _FILLER.sub("", password.lower())
    if password.lower() == name or stripped == _FILLER.sub("", name):
        raise BadRequest("the password must not be the user name", code="password_is_name")
    if _only_common(password):
        raise BadRequest("this password is too well known", code="password_common")


def hash_password(password: str) -> str:
    with _HASHING:
        return HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with no stored hash, the same work is done on
    a dummy hash and the answer is False."""
    try:
        with _HASHING:
            return HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
