"""The tests' own isolation from the machine (``tests/conftest.py``), as a module's fixture
sees it: such fixtures are made before any test's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import LEAKING_VARIABLES


@pytest.fixture(scope="module")
def module_environment() -> dict[str, str]:
    """The environment as a module-scoped fixture finds it."""
    return dict(os.environ)


def test_a_module_fixture_keeps_its_locks_out_of_the_machine_s_run_directory(
    module_environment, tmp_path_factory
):
    """A module's fixture already has a run directory of the session's own."""
    run_dir = Path(module_environment["ORACODE_RUN_DIR"])
    assert run_dir.is_relative_to(tmp_path_factory.getbasetemp())


def test_a_module_fixture_sees_no_developer_s_setting(module_environment):
    """No credential, endpoint, PostgreSQL or terminal setting reaches a module's fixture."""
    assert not set(LEAKING_VARIABLES) & set(module_environment)
