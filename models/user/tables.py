"""The user service's tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.db import Base, utcnow

OWNER, CUSTOMER = "owner", "customer"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    user_status: Mapped[int | None]
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=CUSTOMER)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (CheckConstraint(f"role IN ('{OWNER}', '{CUSTOMER}')", name="role"),)

    @property
    def is_owner(self) -> bool:
        return self.role == OWNER

    def may_manage(self, username: str) -> bool:
        """A user manages only their own account; the store owner manages every one."""
        return self.is_owner or self.username == username


# `Owner` beside `owner` would pass for the owner: names are unique without regard to
# case. Lookups stay exact and use the plain unique constraint's index.
Index("uq_users_username_lower", func.lower(User.username), unique=True)


class LoginToken(Base):
    __tablename__ = "login_tokens"

    # Only a hash of the token is stored, so a database leak yields no usable tokens.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
