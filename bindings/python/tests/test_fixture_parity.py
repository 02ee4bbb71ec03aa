"""The engine against every committed PyTorch fixture (Tests/MultiheadTests/Fixtures).

Tolerance: 1e-5 of the tensor's largest magnitude. Where PyTorch gave NaN (a query row whose
keys are all masked) the engine's documented value is checked instead, against the float64
reference (zero attention: weights 0, output row out_proj.bias when every head is masked).
"""

from __future__ import annotations

import numpy as np
import pytest

import multihead as mh
from fixtures import fixture_paths, load_fixture
from mhtest import assert_close, assert_close_finite, fixture_reference, module_for_fixture, run_fixture

FIXTURES = fixture_paths()


@pytest.fixture(scope="module")
def engine():
    with mh.Engine(2) as e:
        yield e


def test_there_are_fixtures():
    assert len(fixture_paths("mha")) >= 100
    assert [p.stem for p in fixture_paths("seed")] == ["example1", "example2"]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture(path, engine):
    config, tensors = load_fixture(path)
    with module_for_fixture(config, engine) as module:
        module.load_safetensors(path, prefix="param.")
        # The file's parameters arrive unchanged.
        for name, value in module.state_dict().items():
            np.testing.assert_array_equal(value, tensors["param." + name], err_msg=name)
        out, w = run_fixture(module, config, tensors)
        ref_out, ref_w = fixture_reference(config, tensors)

        expected = tensors["expected.output"]
        assert out.shape == expected.shape and out.dtype == np.float32 and out.flags.c_contiguous
        assert_close_finite(out, expected, "output vs torch")
        assert_close(out, ref_out, "output vs float64 reference")
        if config["need_weights"]:
            expected_w = tensors["expected.weights"]
            assert w is not None and w.shape == expected_w.shape and w.flags.c_contiguous
            assert_close_finite(w, expected_w, "weights vs torch")
            assert_close(w, ref_w, "weights vs float64 reference")
        else:
            assert w is None


@pytest.mark.parametrize("path", FIXTURES[::7], ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_through_load_state_dict(path, engine):
    """The same results when the parameters come through load_state_dict."""
    config, tensors = load_fixture(path)
    params = {name[len("param."):]: value for name, value in tensors.items() if name.startswith("param.")}
    with module_for_fixture(config, engine) as a, module_for_fixture(config, engine) as b:
        a.load_safetensors(path, prefix="param.")
        b.load_state_dict(params)
        out_a, w_a = run_fixture(a, config, tensors)
        out_b, w_b = run_fixture(b, config, tensors)
    np.testing.assert_array_equal(out_a, out_b)
    if w_a is not None:
        np.testing.assert_array_equal(w_a, w_b)


def test_fully_masked_fixture_rows_are_documented_values(engine):
    """At least one fixture has PyTorch NaN rows; the engine gives finite values there."""
    seen = 0
    for path in fixture_paths("mha"):
        config, tensors = load_fixture(path)
        if not np.isnan(tensors["expected.output"]).any():
            continue
        seen += 1
        with module_for_fixture(config, engine) as module:
            module.load_safetensors(path, prefix="param.")
            out, w = run_fixture(module, config, tensors)
        assert np.isfinite(out).all()
        if w is not None:
            assert np.isfinite(w).all()
    assert seen > 0
