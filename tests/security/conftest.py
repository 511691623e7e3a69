"""The world under attack, once per test module (see world.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .world import World, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("attacked")) as made:
        yield made
