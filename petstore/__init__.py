"""Shared infrastructure of Petstore sagas: settings and the operator commands."""
