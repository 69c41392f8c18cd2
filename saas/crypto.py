"""Secrets kept encrypted at rest (WhatsApp access tokens, webhook signing secrets, 2FA secrets).

TOKEN_ENCRYPTION_KEY holds one or more Fernet keys: the first encrypts, every one
decrypts, so keys rotate without a flag day (``flask tokens rotate`` re-encrypts).
"""
from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class TokenUnreadable(RuntimeError):
    """A stored access token that none of TOKEN_ENCRYPTION_KEY's keys decrypts."""


@lru_cache(maxsize=8)
def _multi_fernet(setting: str) -> MultiFernet:
    from saas.config import token_keys

    return MultiFernet([Fernet(key.encode("ascii")) for key in token_keys(setting)])


def token_cipher() -> MultiFernet:
    """TOKEN_ENCRYPTION_KEY's keys: the first encrypts, each one decrypts."""
    return _multi_fernet(current_app.config["TOKEN_ENCRYPTION_KEY"])


def encrypt_token(token: str) -> str:
    return token_cipher().encrypt(token.encode()).decode()


def decrypt_token(ciphertext: str) -> str:
    """The token in clear; TokenUnreadable when no configured key decrypts it."""
    try:
        return token_cipher().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenUnreadable("stored access token cannot be decrypted with any key in TOKEN_ENCRYPTION_KEY") from None


def reencrypt_token(ciphertext: str) -> str:
    """The same token encrypted with the first key (MultiFernet.rotate); TokenUnreadable as above."""
    try:
        return token_cipher().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenUnreadable("stored access token cannot be decrypted with any key in TOKEN_ENCRYPTION_KEY") from None
