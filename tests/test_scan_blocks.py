"""run_scan(vmap_size=k): runs vectorised k at a time, blocks looped inside one program.

The same numbers as the whole-chunk vmap (to rounding), one trace per scan, padding to a multiple
of k, and clear errors.
"""

import jax
import numpy as np
import pytest

import theory
from cch_jax.scan import clear_cache, make_chunk_fn, run_scan
from cch_jax.train import GaussianSource, TrainConfig


@pytest.fixture(scope="module")
def config():
    source = GaussianSource(theory.random_model(jax.random.key(2), 2, 3), 12)
    # MLP: not the linear fast path, so the generic per-sample program is what gets blocked.
    return TrainConfig(
        data=source, model="mlp", model_kwargs={"hidden": [4]}, steps=20, eval_every=10
    )


def test_blocks_give_the_whole_chunk_numbers_with_one_trace(config, traces):
    grid = dict(lams=[0.0, 1.0], seeds=range(5), learning_rates=[0.05])
    whole = run_scan(config, **grid, chunk_size=8)
    clear_cache()
    before = traces["train"]
    blocked = run_scan(config, **grid, chunk_size=8, vmap_size=4)  # 2nd chunk padded
    assert traces["train"] - before == 1
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(blocked)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_vmap_size_errors(config):
    with pytest.raises(ValueError, match="vmap_size"):
        make_chunk_fn(config, vmap_size=0)
    fn = make_chunk_fn(config, vmap_size=3)
    with pytest.raises(ValueError, match="must divide the chunk length 4"):
        fn(None, np.arange(4, dtype=np.int32), *(np.ones(4),) * 3)
    cpu = jax.devices("cpu")[0]
    with pytest.raises(ValueError, match="needs one device"):
        run_scan(config, [0.0], seeds=range(2), vmap_size=1, devices=[cpu, cpu])
