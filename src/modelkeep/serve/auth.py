"""API keys: ``Authorization: Bearer KEY`` checked in constant time against stored hashes.

Keys come from ``--api-key-file`` (one a line; ``#`` comments and blank lines skipped) and
from ``MODELKEEP_API_KEYS`` (comma-separated). Each entry is a key, or ``sha256:<64 hex>``,
the SHA-256 of one, so a file need not hold the keys themselves. Only hashes are kept in
memory; a presented key is hashed and compared with every stored hash through
:func:`hmac.compare_digest`, without stopping at the first match. Keys never appear in a
message or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from modelkeep.errors import InvalidArgumentError

__all__ = ["KeyRing", "bearer_token", "load_keys"]

_HASHED = re.compile(r"sha256:([0-9a-fA-F]{64})")
ENV_KEYS = "MODELKEEP_API_KEYS"
ENV_ADMIN = "MODELKEEP_ADMIN_TOKEN"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    """The SHA-256 digests of the accepted keys."""

    def __init__(self, digests: list[bytes]) -> None:
        self._digests = list(digests)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def accepts(self, key: str | None) -> bool:
        """Whether ``key`` is one of the keys (every stored hash is compared)."""
        if key is None:
            return False
        presented = _digest(key)
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(presented, digest)
        return found


def _entry(text: str, where: str) -> bytes:
    match = _HASHED.fullmatch(text)
    if match is not None:
        return bytes.fromhex(match.group(1))
    if text.startswith("sha256:"):
        raise InvalidArgumentError(
            where, "sha256: followed by 64 hexadecimal digits", "a malformed sha256: entry"
        )
    if len(text) < 16:
        raise InvalidArgumentError(
            where,
            "API keys of at least 16 characters",
            f"a key of {len(text)} characters",
            "Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    return _digest(text)


def load_keys(
    path: str | os.PathLike[str] | None, environ: dict[str, str] | None = None
) -> KeyRing:
    """The keys of ``path`` (``--api-key-file``) and of ``$MODELKEEP_API_KEYS``.

    Raises:
        InvalidArgumentError: the file cannot be read, or an entry is malformed (the
            message gives its line, never its text).
    """
    env = os.environ if environ is None else environ
    digests: list[bytes] = []
    if path is not None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgumentError(
                "--api-key-file",
                "a readable UTF-8 file of keys",
                f"{path} ({exc.__class__.__name__})",
            ) from None
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if text and not text.startswith("#"):
                digests.append(_entry(text, f"--api-key-file {path}, line {number}"))
    for position, text in enumerate(env.get(ENV_KEYS, "").split(","), 1):
        if text.strip():
            digests.append(_entry(text.strip(), f"{ENV_KEYS}, entry {position}"))
    return KeyRing(digests)


def admin_token(environ: dict[str, str] | None = None) -> KeyRing:
    """``$MODELKEEP_ADMIN_TOKEN`` as a one-key ring (empty when unset)."""
    env = os.environ if environ is None else environ
    token = env.get(ENV_ADMIN, "").strip()
    if not token:
        return KeyRing([])
    return KeyRing([_entry(token, ENV_ADMIN)])


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
