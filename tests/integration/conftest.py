"""The integration layer runs on real servers, started once it is collected."""

from __future__ import annotations

import pytest

from tests.support import servers


def pytest_configure(config: pytest.Config) -> None:
    # A historic hook: called as this conftest registers, before any module here imports.
    servers.start()
