"""Fixtures of the component tests."""

from __future__ import annotations

import pytest

from tests.components.prod_stacks import Document, preview_document


@pytest.fixture(scope="module")
def stack_preview(request: pytest.FixtureRequest) -> Document:
    """`inferstack preview --json` of the shipped stack the test module names in `STACK`."""
    return preview_document(request.module.STACK)
