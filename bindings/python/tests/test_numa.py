"""NUMA-aware engines: policies, the plan from describe(), same bits on any topology, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

import multihead as mh

TWO_NODES = "package:2 numa:1 core:2 pu:1"
FOUR_NODES = "package:4 numa:1 core:1 pu:1"


def machine_pus() -> int:
    with mh.Engine(policy="none") as engine:
        return sum(len(node["pus"]) for node in engine.describe()["numa_nodes"])


def test_describe_keys_and_defaults():
    with mh.Engine() as engine:
        d = engine.describe()
        for key in ("topology", "numa_nodes", "threads", "policy", "executor", "groups", "plan"):
            assert key in d
        assert isinstance(d["numa_nodes"], list) and d["numa_nodes"]
        assert d["threads"] == engine.num_threads
        assert d["plan"] is None
        assert engine.executor in ("pinned", "dispatch", "plain")


def test_plan_on_a_synthetic_two_node_machine():
    with mh.Engine(synthetic_topology=TWO_NODES) as engine:
        d = engine.describe(8, 12, 128)
        assert len(d["numa_nodes"]) == 2 and d["threads"] == 4
        assert [g["node"] for g in d["groups"]] == [0, 1]
        assert d["mirror_weights"] is True
        phases = {p["name"]: p for p in d["plan"]["phases"]}
        assert set(phases) == {"projections", "kv_packing", "attention", "output"}
        attention = phases["attention"]
        assert attention["tiles"] == 8 * 12 * 2
        assert [a["batches"] for a in attention["assignments"]] == [[[0, 4]], [[4, 8]]]
        assert [a["workers"] for a in attention["assignments"]] == [[0, 1], [2, 3]]
        # One batch on two nodes: the heads are split instead.
        one = engine.describe(1, 12, 64)["plan"]["phases"]
        kv = next(p for p in one if p["name"] == "attention")
        assert [a["tiles"] for a in kv["assignments"]] == [[[0, 6]], [[6, 12]]]


def test_uneven_xml_topology(tmp_path):
    cores = [3, 1]
    xml = ['<?xml version="1.0" encoding="UTF-8"?>', '<!DOCTYPE topology SYSTEM "hwloc2.dtd">',
           '<topology version="2.0">']

    def sets(pus, nodes):
        pm = hex(sum(1 << p for p in pus))
        nm = hex(sum(1 << n for n in nodes))
        return f'cpuset="{pm}" complete_cpuset="{pm}" nodeset="{nm}" complete_nodeset="{nm}"'

    gp = iter(range(2, 1000))
    xml.append(f'<object type="Machine" os_index="0" {sets(range(4), range(2))} allowed_cpuset="0xf" '
               f'allowed_nodeset="0x3" gp_index="1">')
    first = 0
    for node, count in enumerate(cores):
        pus = range(first, first + count)
        xml.append(f'<object type="Package" os_index="{node}" {sets(pus, [node])} gp_index="{next(gp)}">')
        xml.append(f'<object type="NUMANode" os_index="{node}" {sets(pus, [node])} gp_index="{next(gp)}" '
                   'local_memory="1073741824"/>')
        for pu in pus:
            xml.append(f'<object type="Core" os_index="{pu}" {sets([pu], [node])} gp_index="{next(gp)}">')
            xml.append(f'<object type="PU" os_index="{pu}" {sets([pu], [node])} gp_index="{next(gp)}"/></object>')
        xml.append("</object>")
        first += count
    xml += ["</object>", "</topology>"]
    path = tmp_path / "uneven.xml"
    path.write_text("\n".join(xml))
    with mh.Engine(topology_xml=str(path)) as engine:
        d = engine.describe(8, 4, 64)
        assert [len(g["workers"]) for g in d["groups"]] == [3, 1]
        attention = next(p for p in d["plan"]["phases"] if p["name"] == "attention")
        assert [a["batches"] for a in attention["assignments"]] == [[[0, 6]], [[6, 8]]]


def test_same_bits_on_any_topology_policy_and_thread_count():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((70, 4, 64)).astype(np.float32)
    single = rng.standard_normal((150, 1, 64)).astype(np.float32)

    def run(engine):
        m = mh.MultiheadAttention(64, 4, seed=9, engine=engine)
        out, w = m(x, x, x)
        out1, _ = m(single, single, single, is_causal=True, need_weights=False)
        m.close()
        return out, w, out1

    with mh.Engine(1, policy="none", executor="plain") as engine:
        reference = run(engine)
    configurations = [dict(synthetic_topology=t, num_threads=n, executor=e)
                      for t in (TWO_NODES, FOUR_NODES) for n in (0, 1, 2) for e in ("pinned", "dispatch")]
    configurations += [dict(num_threads=2), dict(num_threads=1, policy="isolate"), dict(policy="none", num_threads=2)]
    for configuration in configurations:
        with mh.Engine(**configuration) as engine:
            for got, want in zip(run(engine), reference):
                assert np.array_equal(got, want), configuration


def test_policy_and_cpuset_errors():
    pus = machine_pus()
    with pytest.raises(mh.InvalidArgumentError, match="cpuset is empty"):
        mh.Engine(cpuset="")
    with pytest.raises(mh.InvalidArgumentError, match="does not have"):
        mh.Engine(cpuset=[pus + 7])
    with pytest.raises(mh.InvalidArgumentError, match="invalid CPU list"):
        mh.Engine(cpuset="0-x")
    with pytest.raises(mh.InvalidArgumentError, match=f"{pus + 1} threads requested"):
        mh.Engine(pus + 1, policy="distribute")
    with pytest.raises(mh.InvalidArgumentError, match="binds threads to 1 PU"):
        mh.Engine(2, cpuset=[0])
    with pytest.raises(mh.InvalidArgumentError, match="unknown policy"):
        mh.Engine(policy="everywhere")
    with pytest.raises(mh.InvalidArgumentError, match="needs cpuset"):
        mh.Engine(policy="cpuset")
    with pytest.raises(mh.InvalidArgumentError, match="unknown executor"):
        mh.Engine(executor="openmp")
    with pytest.raises(mh.FormatError, match="invalid synthetic topology"):
        mh.Engine(synthetic_topology="package:two")
    with pytest.raises(mh.FileError, match="cannot read topology XML file"):
        mh.Engine(topology_xml="/nonexistent/topology.xml")
    # The default policy is lenient: more threads than PUs run unbound.
    with mh.Engine(pus + 1) as engine:
        assert engine.num_threads == pus + 1 and engine.policy == "none"
    with mh.Engine(1, cpuset=[0]) as engine:
        assert engine.policy == "cpuset" and engine.describe()["cpuset"] == "0"


def test_describe_errors():
    with mh.Engine(1) as engine:
        with pytest.raises(mh.InvalidArgumentError, match="give all three"):
            engine.describe(batch=2)
        with pytest.raises(mh.InvalidArgumentError, match="multiple of heads"):
            engine.describe(2, 3, 8, embed_dim=8)
        with pytest.raises(mh.InvalidArgumentError, match="batch must be >= 1"):
            engine.describe(0, 2, 8)
        with pytest.raises(mh.OutOfMemoryError):
            engine.describe(2 ** 40, 2, 2 ** 40)
        with pytest.raises(mh.InvalidArgumentError, match="out of range"):
            engine.describe(2 ** 70, 2, 8)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_still_runs():
    # A fork() child has no pool threads: it must fall back to running tiles itself, not hang.
    with mh.Engine(2, executor="pinned") as engine:
        m = mh.MultiheadAttention(64, 4, seed=2, engine=engine)
        x = np.ones((70, 2, 64), np.float32)
        want, _ = m(x, x, x)
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                got, _ = m(x, x, x)
                code = 0 if np.array_equal(got, want) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        m.close()
