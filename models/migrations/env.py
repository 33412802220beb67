"""Alembic environment: migrates the database that `DATABASE_URL` names."""

from alembic import context

import models.counters
import models.inventory
import models.order
import models.outbox
import models.pet
import models.photo
import models.saga
import models.user  # noqa: F401  (registers every service's tables)
from models.db import Base, engine

with engine().connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
