"""The user service: accounts, roles, passwords and login tokens."""

from models.user.operations import (
    BadCredentials,
    CurrentPasswordNeeded,
    IdFixed,
    IncompleteAccount,
    UsernameTaken,
    UserNotFound,
    authenticate,
    create_users,
    delete_user,
    ensure_owner,
    get_user,
    log_in,
    log_out,
    update_user,
)
from models.user.passwords import dummy_hash, hash_password, verify_password
from models.user.tables import CUSTOMER, OWNER, LoginToken, User

__all__ = [
    "CUSTOMER",
    "OWNER",
    "BadCredentials",
    "CurrentPasswordNeeded",
    "IdFixed",
    "IncompleteAccount",
    "LoginToken",
    "User",
    "UserNotFound",
    "UsernameTaken",
    "authenticate",
    "create_users",
    "delete_user",
    "dummy_hash",
    "ensure_owner",
    "get_user",
    "hash_password",
    "log_in",
    "log_out",
    "update_user",
    "verify_password",
]
