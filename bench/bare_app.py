"""The API benchmark's baseline: a bare Flask endpoint reading one pet row, nothing else.

It reads through the same connection helper as the API's reads, so that the ratio
measures what the API adds (routing, schemas, the full pet with its category and tags),
not a different way of talking to PostgreSQL.
"""

from __future__ import annotations

from flask import Flask, abort
from sqlalchemy import text

from models.db import one_statement

app = Flask(__name__)


@app.get("/pet/<int:pet_id>")
def pet(pet_id: int) -> dict:
    with one_statement() as connection:
        row = connection.execute(text("SELECT id, name, status FROM pets WHERE id = :id"),
                                 {"id": pet_id}).first()
    if row is None:
        abort(404)
    return {"id": row.id, "name": row.name, "status": row.status}
