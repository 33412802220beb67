"""Sagas and their step logs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from common.settings import get_settings
from models.db import INT64_MAX, unit_of_work
from models.saga import SAGA_STATUSES, Saga, SagaStep
from sagas.registry import DEFINITIONS, current_step
from web.api import Blueprint
from web.auth import current_user, login_required
from web.saga import timeline
from workers import explain

blp = Blueprint("sagas", __name__, url_prefix="/sagas", description="Sagas and their steps")


class SagaStepSchema(Schema):
    step = fields.String()
    phase = fields.String()
    attempt = fields.Integer()
    status = fields.String()
    taskName = fields.String(attribute="task_name")
    taskId = fields.String(attribute="task_id", allow_none=True)
    error = fields.String(allow_none=True)
    startedAt = fields.DateTime(attribute="started_at", allow_none=True)
    endedAt = fields.DateTime(attribute="ended_at", allow_none=True)
    worker = fields.String(allow_none=True)
    # A computed field has no type of its own in the document: state it.
    durationMs = fields.Method("duration_ms", metadata={"type": "integer", "nullable": True})

    def duration_ms(self, step: SagaStep) -> int | None:
        """How long the attempt ran; None while it runs."""
        return None if step.took is None else step.took // timedelta(milliseconds=1)


class SagaSchema(Schema):
    id = fields.UUID()
    kind = fields.String()
    status = fields.String()
    currentStep = fields.Method("step_name")
    phase = fields.String()
    payload = fields.Dict()
    error = fields.String(allow_none=True)
    errorCode = fields.String(attribute="error_code", allow_none=True)
    version = fields.Integer()
    createdAt = fields.DateTime(attribute="created_at")
    updatedAt = fields.DateTime(attribute="updated_at")
    endedAt = fields.DateTime(attribute="ended_at", allow_none=True)

    def step_name(self, saga: Saga) -> str:
        return current_step(saga)


class WaitingSchema(Schema):
    """What a saga in flight waits for now (`celery -A workers saga explain` in words)."""

    step = fields.String()
    phase = fields.String()
    task = fields.String()
    queue = fields.String()
    queued = fields.Integer(allow_none=True, metadata={
        "description": "Messages waiting in that queue to be taken (not those a worker "
                       "holds); null when the broker is out of reach"})
    attempt = fields.Integer(metadata={"description": "Deliveries of the step counted so far"})
    attempts = fields.Integer(metadata={"description": "How many its retry policy allows"})
    sweeps = fields.Integer(metadata={"description": "Times the sweeper dispatched it again"})
    deadline = fields.DateTime()
    lastWorker = fields.String(allow_none=True)
    lastAttempt = fields.String(allow_none=True)
    atDeadline = fields.String(metadata={
        "description": "What the sweeper does when the deadline passes"})


class SagaWithStepsSchema(SagaSchema):
    steps = fields.List(fields.Nested(SagaStepSchema))
    waitingFor = fields.Nested(WaitingSchema, attribute="waiting_for", allow_none=True,
                               metadata={"description": "Null once the saga has ended"})


class SagaQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(SAGA_STATUSES))
    kind = fields.String(validate=validate.OneOf(sorted(DEFINITIONS)))


@blp.route("")
class Sagas(MethodView):
    @login_required(blp, owner=True)
    @blp.arguments(SagaQuerySchema, location="query")
    @blp.response(200, SagaSchema(many=True))
    @blp.paginate()
    def get(self, query: dict[str, Any], pagination_parameters):
        """List sagas, newest first"""
        conditions = [getattr(Saga, name) == value for name, value in query.items()]
        with unit_of_work() as session:
            pagination_parameters.item_count = session.scalar(
                select(func.count()).select_from(Saga).where(*conditions))
            return session.scalars(
                select(Saga).where(*conditions).order_by(Saga.created_at.desc())
                # A page past any real one is simply empty, however large its number.
                .offset(min(pagination_parameters.first_item, INT64_MAX))
                .limit(pagination_parameters.page_size)).all()


@blp.route("/<uuid:saga_id>")
@login_required(blp)
@blp.response(200, SagaWithStepsSchema)
@blp.alt_response(404, response="NOT_FOUND")
def saga_by_id(saga_id: uuid.UUID):
    """A saga and the log of its step attempts

    The store owner sees every saga; a customer sees the sagas of their own requests.
    """
    saga = _visible(saga_id)
    saga.waiting_for = explain.waiting_for(saga)
    return saga


@blp.route("/<uuid:saga_id>/timeline")
@login_required(blp)
@blp.doc(responses={"200": {
    "description": "An HTML page: each attempt a bar on a time axis, by service, linked to "
                   "its task in Flower",
    "content": {"text/html": {"schema": {"type": "string"}}}}})
@blp.alt_response(404, response="NOT_FOUND")
def saga_timeline(saga_id: uuid.UUID) -> Response:
    """A saga's timeline, a page for a browser

    Log in first (the login's cookie lets a browser read), then open it. The store owner
    sees every saga; a customer sees the sagas of their own requests.
    """
    page = timeline.page(_visible(saga_id), get_settings().flower_url)
    return Response(page, mimetype="text/html")


def _visible(saga_id: uuid.UUID) -> Saga:
    """The saga with its step log, if the user may see it; 404 otherwise."""
    user = current_user()
    with unit_of_work() as session:
        saga = session.scalar(select(Saga).where(Saga.id == saga_id)
                              .options(selectinload(Saga.steps)))
    # Another customer's saga does not exist for this one: no oracle of others' orders.
    if saga is None or not (user.is_owner or saga.started_by == user.id):
        abort(404, message=f"Saga {saga_id} not found")
    return saga
