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


UNREADABLE = "stored access token cannot be decrypted with any key in TOKEN_ENCRYPTION_KEY"


class TokenCipher:
    """TOKEN_ENCRYPTION_KEY's keys from the settings given (read at each use), for code that runs with
    no app context: the send path's transport decrypts live numbers' tokens with it."""

    def __init__(self, config):
        self.config = config

    def decrypt(self, ciphertext: str) -> str:
        """The token in clear; TokenUnreadable when no configured key decrypts it."""
        try:
            return _multi_fernet(self.config["TOKEN_ENCRYPTION_KEY"]).decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenUnreadable(UNREADABLE) from None


def token_cipher() -> MultiFernet:
    """TOKEN_ENCRYPTION_KEY's keys: the first encrypts, each one decrypts."""
    return _multi_fernet(current_app.config["TOKEN_ENCRYPTION_KEY"])


def encrypt_token(token: str) -> str:
    return token_cipher().encrypt(token.encode()).decode()


def decrypt_token(ciphertext: str) -> str:
    """The token in clear; TokenUnreadable when no configured key decrypts it."""
    return TokenCipher(current_app.config).decrypt(ciphertext)


def reencrypt_token(ciphertext: str) -> str:
    """The same token encrypted with the first key (MultiFernet.rotate); TokenUnreadable as above."""
    try:
        return token_cipher().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise TokenUnreadable(UNREADABLE) from None
