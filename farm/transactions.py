"""Transactions repeated when the database broke a lock conflict by rolling one back.

MariaDB resolves a deadlock by rolling back one of the transactions (error 1213) and says
"try restarting transaction"; a lock wait can also time out (1205). SQLite answers
"database is locked" when its busy timeout runs out. The whole transaction is repeated from
its start, at its outermost boundary: inside an outer transaction there is nothing to
repeat, so the error goes up to whoever opened that one.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import OperationalError, connection, transaction

MARIADB_LOCK_CONFLICTS = (1213, 1205)  # ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
ATTEMPTS = 6
# Backoff with full jitter: attempt n sleeps up to BASE * 2**n seconds.
BACKOFF_BASE_SECONDS = 0.02

P = ParamSpec("P")
R = TypeVar("R")


def is_lock_conflict(exc: BaseException) -> bool:
    if not isinstance(exc, OperationalError) or not exc.args:
        return False
    code = exc.args[0]
    return code in MARIADB_LOCK_CONFLICTS or (
        isinstance(code, str) and "database is locked" in code
    )


def atomic_with_retries(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `func` in a transaction; repeat it (a few times, with backoff) when the database
    rolled that transaction back to break a lock conflict."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return func(*args, **kwargs)
        except OperationalError as exc:
            if not is_lock_conflict(exc) or attempt == ATTEMPTS or connection.in_atomic_block:
                raise
        time.sleep(random.uniform(0, BACKOFF_BASE_SECONDS * 2**attempt))  # noqa: S311
    raise AssertionError("unreachable")


def retry_on_lock_conflict(func: Callable[P, R]) -> Callable[P, R]:
    """A service's transaction, repeated on a lock conflict when it is the outermost one."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return atomic_with_retries(func, *args, **kwargs)

    return wrapper
