"""API keys: generated here, stored only as SHA-256 hashes, checked in constant time."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.models import ApiKey

ADMIN_ENV_KEY_ID = "admin"


@dataclass(frozen=True)
class Caller:
    key_id: str
    is_admin: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return "mq_" + secrets.token_urlsafe(32)


def create_key(session: Session, name: str, *, is_admin: bool = False) -> tuple[ApiKey, str]:
    """Create a key; the plain text is returned once and never stored."""
    plain = generate_key()
    row = ApiKey(name=name, key_hash=hash_key(plain), is_admin=is_admin)
    session.add(row)
    session.flush()
    return row, plain


def authenticate(session: Session, settings: Settings, presented: str) -> Caller | None:
    if settings.admin_key is not None and hmac.compare_digest(
        presented.encode(), settings.admin_key.get_secret_value().encode()
    ):
        return Caller(ADMIN_ENV_KEY_ID, True)
    row = session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(presented), ApiKey.revoked_at.is_(None))
    )
    return Caller(row.id, row.is_admin) if row else None
