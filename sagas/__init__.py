"""The saga engine and the saga definitions.

A saga is declared as an ordered list of steps (`sagas.definition`); the engine
(`sagas.engine`) alone decides what runs next, keeps the state in PostgreSQL and sends
every command through the outbox. Participants run their steps with `sagas.runner`.
"""
