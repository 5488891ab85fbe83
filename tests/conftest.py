"""float64 once for the whole suite: theory-vs-simulation comparisons need it (design.md §4).

The CLI's persistent compilation cache is off for the suite (tests/test_cli_engine.py tests it in
subprocesses of its own), so that tests neither read nor write the user's ~/.cache/cch/xla.
"""

import os

import jax

os.environ.setdefault("CCH_NO_COMPILE_CACHE", "1")
jax.config.update("jax_enable_x64", True)
