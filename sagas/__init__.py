"""The saga engine and the saga definitions.

A saga is declared as an ordered list of steps (`sagas.definition`); the engine
(`sagas.engine`) alone moves a saga on, by its rules (`sagas.machine`), keeping its state
in PostgreSQL (`sagas.store`) and sending every command through the outbox. See
docs/engine.md.
"""
