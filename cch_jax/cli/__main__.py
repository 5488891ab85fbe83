"""`python -m cch_jax.cli` = `cch`."""

import sys

from cch_jax.cli import main

sys.exit(main())
