"""Engines and lifetimes: thread counts, same bits for any thread count, concurrent calls,
closing, and the library lookup."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import multihead as mh
from mhtest import random_params

PACKAGE_ROOT = Path(mh.__file__).resolve().parent.parent


def test_engine_threads():
    with mh.Engine(1) as one, mh.Engine(2) as two, mh.Engine() as default:
        assert one.num_threads == 1 and two.num_threads == 2
        assert default.num_threads >= 1
        assert "num_threads=2" in repr(two)


def test_engine_close_is_idempotent():
    engine = mh.Engine(1)
    engine.close()
    engine.close()
    assert engine.closed and repr(engine) == "Engine(closed)"
    with pytest.raises(mh.Error, match="engine is closed"):
        engine.num_threads
    with pytest.raises(mh.Error, match="engine is closed"):
        mh.MultiheadAttention(4, 2, engine=engine)


def test_engine_outlives_its_modules():
    engine = mh.Engine(2)
    module = mh.MultiheadAttention(4, 2, engine=engine)
    assert module.engine is engine
    engine.close()  # deferred: the module still runs
    assert engine.closed
    x = np.ones((2, 1, 4), np.float32)
    out, _ = module(x, x, x)
    assert np.isfinite(out).all()
    assert engine._handle is not None
    module.close()
    assert engine._handle is None


def _big_inputs(seed=0):
    rng = np.random.default_rng(seed)
    E, H, L, S, N = 64, 4, 67, 131, 3
    params = random_params(rng, E, E, 40, E, bias_kv=True)
    q = rng.standard_normal((L, N, E)).astype(np.float32)
    k = rng.standard_normal((S, N, 40)).astype(np.float32)
    v = rng.standard_normal((S, N, E)).astype(np.float32)
    kpm = rng.random((N, S)) < 0.2
    return dict(E=E, H=H, params=params, args=(q, k, v), kpm=kpm)


def _run(engine, case, **kw):
    with mh.MultiheadAttention(case["E"], case["H"], add_bias_kv=True, kdim=40, engine=engine) as m:
        m.load_state_dict(case["params"])
        return m(*case["args"], key_padding_mask=case["kpm"], average_attn_weights=False, **kw)


def test_same_bits_with_one_and_two_threads():
    case = _big_inputs()
    with mh.Engine(1) as one, mh.Engine(2) as two, mh.Engine(3) as three:
        a = _run(one, case)
        b = _run(two, case)
        c = _run(three, case)
        d = _run(None, case)
    for other in (b, c, d):
        np.testing.assert_array_equal(a[0], other[0])
        np.testing.assert_array_equal(a[1], other[1])
    # need_weights=False takes another path; the output bits stay the same across threads too.
    with mh.Engine(1) as one, mh.Engine(2) as two:
        x = _run(one, case, need_weights=False)[0]
        y = _run(two, case, need_weights=False)[0]
    np.testing.assert_array_equal(x, y)


def test_concurrent_forward_from_python_threads():
    case = _big_inputs(1)
    with mh.Engine(2) as engine, mh.MultiheadAttention(case["E"], case["H"], add_bias_kv=True, kdim=40,
                                                        engine=engine) as m:
        m.load_state_dict(case["params"])
        expected = m(*case["args"], key_padding_mask=case["kpm"])
        results, errors = [], []

        def work():
            try:
                for _ in range(5):
                    results.append(m(*case["args"], key_padding_mask=case["kpm"]))
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(results) == 40
    for out, w in results:
        np.testing.assert_array_equal(out, expected[0])
        np.testing.assert_array_equal(w, expected[1])


def test_dropped_modules_and_engines_are_freed():
    for _ in range(50):
        engine = mh.Engine(1)
        module = mh.MultiheadAttention(8, 2, engine=engine)
        module(np.ones((1, 1, 8), np.float32), np.ones((1, 1, 8), np.float32), np.ones((1, 1, 8), np.float32))
        del module, engine
    gc.collect()


def _python(code: str, env_update: dict, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "MULTIHEAD_LIBRARY"}
    env["PYTHONPATH"] = str(PACKAGE_ROOT)
    env.update(env_update)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_missing_library_is_reported_on_use(tmp_path):
    code = ("import multihead as mh\n"
            "try:\n    mh.MultiheadAttention(4, 2)\n"
            "except mh.LibraryNotFoundError as e:\n    print('ERR', isinstance(e, ImportError), e)\n")
    result = _python(code, {"MULTIHEAD_LIBRARY": str(tmp_path / "nope.so")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ERR True") and "make lib" in result.stdout and "nope.so" in result.stdout
    not_a_library = tmp_path / "libmultihead.so"
    not_a_library.write_text("not an ELF file")
    result = _python(code, {"MULTIHEAD_LIBRARY": str(not_a_library)})
    assert result.stdout.startswith("ERR True") and "cannot load" in result.stdout, result.stdout + result.stderr


def test_library_found_without_the_environment_variable(tmp_path):
    path = Path(mh.library_path())
    assert path.is_file()
    result = _python("import multihead as mh; print(mh.library_path()); print(mh.library_version())", {},
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found, version = result.stdout.split()
    assert Path(found).is_file() and version == "0.1.0"
