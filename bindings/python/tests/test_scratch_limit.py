"""Engine(scratch_limit=...): calls whose scratch passes the limit run their heads in groups.

Checked against the float64 reference and against an engine that never groups: the weights are
the same bits (projections and attention do not change), the output differs by rounding only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import multihead as mh

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import mha_reference  # noqa: E402


@pytest.mark.parametrize("limit", [1, 40_000, 10**6])
@pytest.mark.parametrize("cross", [False, True])
def test_grouped_heads_match_reference_and_ungrouped(limit, cross):
    rng = np.random.default_rng(limit + cross)
    L, S, N, E, H = 70, (90 if cross else 70), 2, 30, 5
    x = rng.standard_normal((L, N, E), dtype=np.float32)
    kv = rng.standard_normal((S, N, E), dtype=np.float32) if cross else x
    kpm = rng.random((N, S)) < 0.2
    kpm[:, 0] = False
    with mh.Engine(2, scratch_limit=limit) as grouped, mh.Engine(2, scratch_limit=2**70) as whole:
        assert grouped.describe()["scratch_limit"] == limit
        assert whole.describe()["scratch_limit"] is None  # never groups
        a = mh.MultiheadAttention(E, H, add_bias_kv=True, seed=3, engine=grouped)
        b = mh.MultiheadAttention(E, H, add_bias_kv=True, seed=3, engine=whole)
        params = a.state_dict()
        params["in_proj_bias"] = rng.standard_normal(3 * E).astype(np.float32)
        params["out_proj.bias"] = rng.standard_normal(E).astype(np.float32)
        a.load_state_dict(params)
        b.load_state_dict(params)
        out, w = a(x, kv, kv, key_padding_mask=kpm, average_attn_weights=False)
        out_whole, w_whole = b(x, kv, kv, key_padding_mask=kpm, average_attn_weights=False)
        ref_out, ref_w = mha_reference(x, kv, kv, params, embed_dim=E, num_heads=H, add_bias_kv=True,
                                       key_padding_mask=kpm, average_attn_weights=False)
    assert np.array_equal(w.view(np.uint32), w_whole.view(np.uint32))
    assert np.max(np.abs(out - out_whole)) < 1e-5
    assert np.max(np.abs(out - ref_out)) < 2e-5 * max(1.0, np.max(np.abs(ref_out)))
    assert np.max(np.abs(w - ref_w)) < 2e-5


@pytest.mark.parametrize("bad", [0, -1, -(2**40)])
def test_non_positive_limit_is_an_error(bad):
    with pytest.raises(mh.InvalidArgumentError, match="scratch_limit must be a positive byte count"):
        mh.Engine(1, scratch_limit=bad)


@pytest.mark.parametrize("bad", [1.5, "64M", True])
def test_limit_of_the_wrong_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match="scratch_limit"):
        mh.Engine(1, scratch_limit=bad)


def test_default_limit_is_32_mib():
    with mh.Engine(1) as engine:
        assert engine.describe()["scratch_limit"] == 32 << 20


def test_describe_plans_head_groups():
    with mh.Engine(2) as engine:
        plan = engine.describe(1, 16, 16384, embed_dim=1024)["plan"]
        assert (plan["heads_per_group"], plan["head_groups"]) == (1, 16)
        assert [s for p in plan["phases"] if p["name"] == "projections" for s in p["segments"]] == ["q", "k", "v"]
    with mh.Engine(2, scratch_limit=2**62) as engine:
        plan = engine.describe(1, 16, 16384, embed_dim=1024)["plan"]
        assert (plan["heads_per_group"], plan["head_groups"]) == (16, 1)
