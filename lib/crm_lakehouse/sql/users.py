"""The endpoint's password file: one ``user:pbkdf2_sha256$iterations$salt$hash`` line per user.

Only salted PBKDF2 hashes are stored; the server's authenticator (PasswordFileAuthenticator.java)
checks logins against the same format and rereads the file on every login.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from crm_lakehouse.errors import ConfigError

ITERATIONS = 210_000


def password_hash(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def set_password(file: Path, user: str, password: str) -> None:
    """Add ``user`` or replace their password; the file is created readable by its owner only."""
    if not user or ":" in user or user.strip() != user:
        raise ConfigError(f"user name {user!r} is not allowed", where=str(file),
                          fix="use a name without ':' or surrounding spaces")
    if len(password) < 8:
        raise ConfigError("the password is shorter than 8 characters", where=str(file), fix="choose a longer one")
    lines = file.read_text(encoding="utf-8").splitlines() if file.exists() else []
    kept = [line for line in lines if line.split(":", 1)[0] != user]
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(file.name + ".tmp")
    partial.write_text("\n".join([*kept, f"{user}:{password_hash(password)}"]) + "\n", encoding="utf-8")
    os.chmod(partial, 0o600)
    partial.replace(file)
