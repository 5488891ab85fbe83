"""Tests written for mutants that survived `make mutate` (docs/testing.md lists them)."""

from __future__ import annotations

import jax
import pytest

import theory


def test_empty_block_list_names_the_rule():
    model = theory.random_model(jax.random.key(0), 2, 2)
    with pytest.raises(ValueError, match="must name at least one of 'x1', 'x2', 'y'"):
        theory.mi_blocks(model, [], "y")
