"""float64 once for the whole suite: theory-vs-simulation comparisons need it.

The CLI's persistent compilation cache is off for the suite (tests/test_cli_engine.py tests it in
subprocesses of its own), so that tests neither read nor write the user's ~/.cache/cch/xla.
"""

import os
from collections import Counter

import jax
import pytest

os.environ.setdefault("CCH_NO_COMPILE_CACHE", "1")
jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="session", autouse=True)
def traces():
    """How many times scans have traced a training run: {"train": count}.

    The counter is the tests' own: for the whole session, `cch_jax.scan` builds its runs through
    a wrapper of `make_train` that counts each trace (a call of `train` happens only while jit,
    vmap or lax.map trace it). Installed before the first test, so every cached chunk function
    counts.
    """
    import cch_jax.scan

    counter = Counter()
    make_train = cch_jax.scan.make_train

    def counting_make_train(config, source=None):
        train = make_train(config, source)

        def counted(*args):
            counter["train"] += 1
            return train(*args)

        return counted

    patch = pytest.MonkeyPatch()
    patch.setattr(cch_jax.scan, "make_train", counting_make_train)
    yield counter
    patch.undo()
