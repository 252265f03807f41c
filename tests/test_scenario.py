"""Scenario files: loading (JSON, TOML), strict validation with clear errors, layout."""
from __future__ import annotations

import copy
import json
import sys

import pytest

import cowsim
from cowsim.validation.files import load_scenarios, loads, parse_scenarios
from cowsim.validation.scenario import LAYOUT_BASE, Scenario

BASE = {
    "name": "basic",
    "description": "write, fork, child writes",
    "steps": [
        {"op": "map", "region": "a", "pages": 16},
        {"op": "write", "region": "a", "value": 7},
        {"op": "fork", "child": "child"},
        {"op": "write", "proc": "child", "region": "a", "count": 4, "expect": {"minflt": 4}},
        {"op": "exit", "proc": "child", "expect": {"a.Pss": 64}},
    ],
}

TOML = """
name = "basic"
description = "write, fork, child writes"

[[steps]]
op = "map"
region = "a"
pages = 16

[[steps]]
op = "write"
region = "a"
value = 7

[[steps]]
op = "fork"
child = "child"

[[steps]]
op = "write"
proc = "child"
region = "a"
count = 4
expect = { minflt = 4 }

[[steps]]
op = "exit"
proc = "child"
expect = { "a.Pss" = 64 }
"""


def with_steps(*steps, **top):
    d = {"name": "t", "steps": list(steps)}
    d.update(top)
    return d


MAP_A = {"op": "map", "region": "a", "pages": 8}
MAP_S = {"op": "map", "region": "s", "pages": 8, "shared": True}


def test_json_and_toml_load_the_same(tmp_path):
    pj = tmp_path / "s.json"
    pj.write_text(json.dumps(BASE))
    pt = tmp_path / "s.toml"
    pt.write_text(TOML)
    (sj,) = load_scenarios(pj)
    (st,) = load_scenarios(pt)
    assert sj.to_dict() == st.to_dict()
    assert [s.describe() for s in sj.steps] == [s.describe() for s in st.steps]
    assert sj.steps[3].expect == {("child", "", "minflt"): 4}
    assert sj.steps[4].expect == {("parent", "a", "Pss"): 64}  # an exit measures the parent


def test_round_trip_and_queries():
    sc = Scenario.from_dict(BASE)
    again = Scenario.from_dict(sc.to_dict())
    assert again.to_dict() == sc.to_dict()
    assert sc.procs == ("parent", "child")
    assert sc.parents == {"child": "parent"}
    fork = sc.steps[2]
    assert sc.measured_procs(fork) == ("parent", "child")
    assert sc.measured_procs(sc.steps[4]) == ("parent",)
    assert Scenario.process_metrics(fork) == ()
    assert Scenario.process_metrics(sc.steps[1]) == ("minflt", "copied", "segv")
    keys = sc.keys(sc.steps[1])
    assert keys[0] == (2, "parent", "", "minflt")
    assert (2, "parent", "a", "Pss") in keys
    assert "basic" in repr(sc)


def test_several_scenarios_per_file(tmp_path):
    other = copy.deepcopy(BASE)
    other["name"] = "other"
    p = tmp_path / "two.json"
    p.write_text(json.dumps({"scenarios": [BASE, other]}))
    assert [s.name for s in load_scenarios(p)] == ["basic", "other"]
    assert [s.name for s in parse_scenarios([BASE, other])] == ["basic", "other"]
    with pytest.raises(cowsim.InvalidArgument, match="duplicate scenario name"):
        parse_scenarios([BASE, BASE])
    with pytest.raises(cowsim.InvalidArgument, match="unknown top-level field"):
        parse_scenarios({"scenarios": [BASE], "extra": 1})
    toml = "[[scenarios]]\n" + TOML.replace("[[steps]]", "[[scenarios.steps]]").replace('"basic"', '"x"', 1)
    assert [s.name for s in loads(toml, "toml")] == ["x"]


def test_implicit_exits_children_first():
    sc = Scenario.from_dict(with_steps(
        MAP_A, {"op": "fork", "child": "c"}, {"op": "fork", "proc": "c", "child": "g"},
        {"op": "fork", "child": "d"}))
    implicit = [s for s in sc.steps if s.implicit]
    assert [(s.op, s.proc) for s in implicit] == [("exit", "d"), ("exit", "g"), ("exit", "c")]
    assert len(sc.reported_steps()) == 4


def test_layout_is_aligned_and_separated():
    sc = Scenario.from_dict(with_steps(
        {"op": "map", "region": "a", "pages": 512}, {"op": "map", "region": "b", "pages": 513},
        {"op": "map", "region": "c", "pages": 1}))
    lay = sc.layout(4096)
    span = 2 << 20
    assert lay["a"] == LAYOUT_BASE
    for name, spec in sc.regions.items():
        assert lay[name] % span == 0
    ends = sorted((lay[n], lay[n] + sc.regions[n].pages * 4096) for n in lay)
    for (_, end), (start, _) in zip(ends, ends[1:]):
        assert start - end >= span  # room for guard pages, never adjacent
    assert lay == sc.layout(4096)  # deterministic
    big = sc.layout(65536)
    assert all(v % (65536 * 8192) == 0 for v in big.values())


def test_huge_map_option():
    sc = Scenario.from_dict(with_steps(
        {"op": "map", "region": "h", "pages": 512, "huge": True}, MAP_A,
        {"op": "write", "region": "h", "count": 1, "expect": {"h.AnonHugePages": 2048}}))
    assert sc.uses_thp and sc.regions["h"].huge and not sc.regions["a"].huge
    assert sc.steps[0].huge and not sc.steps[1].huge
    assert sc.steps[0].describe() == "map h (512 pages, rw private huge)"
    assert sc.steps[1].describe() == "map a (8 pages, rw private)"
    assert sc.steps[2].expect == {("parent", "h", "AnonHugePages"): 2048}
    assert (3, "parent", "h", "AnonHugePages") in sc.keys(sc.steps[2])
    assert Scenario.from_dict(sc.to_dict()).regions["h"].huge  # round trip
    # huge regions start on a 2 MiB boundary: one huge page maps each whole 512-page span
    assert all(addr % (2 << 20) == 0 for addr in sc.layout(4096).values())
    plain = Scenario.from_dict(with_steps(MAP_A, {"op": "map", "region": "b", "pages": 4, "huge": False}))
    assert not plain.uses_thp and plain.to_dict()["steps"][1]["huge"] is False
    (toml,) = loads('name = "h"\n[[steps]]\nop = "map"\nregion = "h"\npages = 512\nhuge = true\n', "toml")
    assert toml.regions["h"].huge


BAD = [
    # (scenario dict, fragments the message must contain)
    (with_steps(MAP_A, {"op": "jump"}), ["step 2", "'op'", "unknown step 'jump'", "map, read"]),
    (with_steps({"region": "a"}), ["step 1", "missing field 'op'"]),
    (with_steps({"op": "map", "region": "a"}), ["step 1 (map)", "missing field 'pages'"]),
    (with_steps(MAP_A, {"op": "write", "region": "b"}), ["step 2 (write)", "'region'", "unknown region 'b'",
                                                         "defined so far: a"]),
    (with_steps({"op": "read", "region": "a"}), ["step 1 (read)", "unknown region 'a'", "none yet"]),
    (with_steps({"op": "map", "region": "a", "pages": -4}), ["step 1 (map)", "'pages'", "-4"]),
    (with_steps({"op": "map", "region": "a", "pages": 0}), ["'pages'", "[1, "]),
    (with_steps({"op": "map", "region": "a", "pages": "4"}), ["'pages'", "must be an integer"]),
    (with_steps({"op": "map", "region": "a", "pages": True}), ["'pages'", "must be an integer"]),
    (with_steps({"op": "map", "region": "a", "pages": 1 << 30}), ["'pages'", "262144"]),
    (with_steps({"op": "map", "region": "a", "pages": 4, "colour": "red"}), ["step 1 (map)", "unknown field",
                                                                             "'colour'"]),
    (with_steps({"op": "map", "region": "a", "pages": 4, "shared": "yes"}), ["'shared'", "true or false"]),
    (with_steps({"op": "map", "region": "a", "pages": 4, "prot": "rwx"}), ["'prot'", "none, r, rw", "'rwx'"]),
    (with_steps({"op": "map", "region": "a b", "pages": 4}), ["'region'", "must be a name"]),
    (with_steps({"op": "map", "region": "a", "pages": 512, "huge": 1}), ["step 1 (map)", "'huge'", "true or false"]),
    (with_steps({"op": "map", "region": "a", "pages": 512, "huge": True, "shared": True}),
     ["step 1 (map)", "'huge'", "private regions only", "'a' is shared"]),
    (with_steps(MAP_A, {"op": "write", "region": "a", "huge": True}), ["step 2 (write)", "unknown field", "'huge'"]),
    (with_steps(MAP_A, MAP_A), ["step 2 (map)", "already defined (step 1)"]),
    (with_steps(MAP_A, {"op": "write", "region": "a", "first": 8}), ["step 2 (write)", "'first'", "[0, 7]"]),
    (with_steps(MAP_A, {"op": "write", "region": "a", "first": 4, "count": 5}), ["'count'", "[1, 4]", "5"]),
    (with_steps(MAP_A, {"op": "write", "region": "a", "value": 256}), ["'value'", "[0, 255]"]),
    (with_steps(MAP_A, {"op": "read", "region": "a", "value": 1}), ["step 2 (read)", "unknown field", "'value'"]),
    (with_steps(MAP_A, {"op": "madvise", "region": "a", "advice": "free"}), ["'advice'", "dontfork", "'free'"]),
    (with_steps(MAP_S, {"op": "madvise", "region": "s", "advice": "wipeonfork"}),
     ["step 2 (madvise)", "not allowed on shared region 's'"]),
    (with_steps(MAP_A, {"op": "munmap", "region": "a", "count": 4}, {"op": "mprotect", "region": "a", "prot": "r"}),
     ["step 3 (mprotect)", "not all mapped in process 'parent'"]),
    (with_steps(MAP_A, {"op": "madvise", "region": "a", "advice": "dontfork"}, {"op": "fork", "child": "c"},
                {"op": "madvise", "proc": "c", "region": "a", "advice": "dontneed"}),
     ["step 4 (madvise)", "not all mapped in process 'c'"]),
    (with_steps(MAP_A, {"op": "write", "proc": "ghost", "region": "a"}),
     ["step 2 (write)", "'proc'", "'ghost' does not exist"]),
    (with_steps(MAP_A, {"op": "fork", "child": "c"}, {"op": "exit", "proc": "c"}, {"op": "measure", "proc": "c"}),
     ["step 4 (measure)", "'c' has exited"]),
    (with_steps(MAP_A, {"op": "exit", "proc": "parent"}), ["step 2 (exit)", "root process", "cannot exit"]),
    (with_steps(MAP_A, {"op": "exit"}), ["step 2 (exit)", "missing field 'proc'"]),
    (with_steps(MAP_A, {"op": "fork", "child": "c"}, {"op": "fork", "proc": "c", "child": "g"},
                {"op": "exit", "proc": "c"}), ["step 4 (exit)", "live children ['g']"]),
    (with_steps(MAP_A, {"op": "fork", "child": "c"}, {"op": "fork", "child": "c"}), ["step 3 (fork)", "already used"]),
    (with_steps(MAP_A, {"op": "fork", "child": "parent"}), ["'child'", "already used"]),
    (with_steps(MAP_A, {"op": "write", "region": "a", "expect": {"a.Rsss": 1}}),
     ["step 2 (write)", "'expect'", "unknown region metric 'Rsss'"]),
    (with_steps(MAP_A, {"op": "write", "region": "a", "expect": {"b.Rss": 1}}), ["unknown region 'b'"]),
    (with_steps(MAP_A, {"op": "write", "region": "a", "expect": {"data_sum": 1}}),
     ["metric 'data_sum' is not measured for write"]),
    (with_steps(MAP_A, {"op": "fork", "child": "c", "expect": {"minflt": 0}}),
     ["step 2 (fork)", "'minflt' is not measured for fork"]),
    (with_steps(MAP_A, {"op": "write", "region": "a", "expect": {"c:minflt": 1}}),
     ["process 'c' is not measured by this step"]),
    (with_steps(MAP_A, {"op": "write", "region": "a", "expect": {"minflt": -1}}), ["'expect.minflt'", "-1"]),
    (with_steps(MAP_A, {"op": "write", "region": "a", "expect": [1]}), ["'expect' must be a table"]),
    (with_steps(MAP_A, {"op": "measure", "note": 3}), ["'note' must be a string"]),
    (with_steps(MAP_A, "write"), ["step 2", "must be a table/object"]),
    ({"name": "t", "steps": []}, ["scenario 't'", "non-empty list"]),
    ({"steps": [MAP_A]}, ["missing field 'name'"]),
    ({"name": "t", "steps": [MAP_A], "extra": 1}, ["unknown field(s) extra"]),
    ({"name": "t", "steps": [MAP_A], "description": 5}, ["'description' must be a string"]),
    ([], ["non-empty list"]),
]


@pytest.mark.parametrize("data,fragments", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_invalid_scenarios_are_rejected_with_clear_errors(data, fragments):
    with pytest.raises(cowsim.InvalidArgument) as info:
        parse_scenarios(data, "bad.json")
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    assert isinstance(info.value, ValueError) and isinstance(info.value, cowsim.CowsimError)


def test_too_many_things():
    steps = [MAP_A] + [{"op": "measure"}] * 400
    with pytest.raises(cowsim.InvalidArgument, match="at most 400 steps"):
        Scenario.from_dict(with_steps(*steps))
    forks = [MAP_A] + [{"op": "fork", "child": f"c{i}"} for i in range(16)]
    with pytest.raises(cowsim.InvalidArgument, match="at most 16 processes"):
        Scenario.from_dict(with_steps(*forks))


def test_file_errors(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("x")
    with pytest.raises(cowsim.InvalidArgument, match=r"\.json or \.toml"):
        load_scenarios(p)
    with pytest.raises(cowsim.InvalidArgument, match="cannot read"):
        load_scenarios(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(cowsim.InvalidArgument, match="bad.json: not valid JSON"):
        load_scenarios(bad)
    badt = tmp_path / "bad.toml"
    badt.write_text("name = ")
    with pytest.raises(cowsim.InvalidArgument, match="bad.toml: not valid TOML"):
        load_scenarios(badt)
    with pytest.raises(cowsim.InvalidArgument, match="unknown scenario format"):
        loads("{}", "yaml")


def test_toml_without_tomllib_or_tomli(monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(cowsim.InvalidArgument, match="tomli"):
        loads(TOML, "toml", "s.toml")
    assert loads(json.dumps(BASE), "json")[0].name == "basic"  # JSON still works
