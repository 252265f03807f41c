"""The command line as one wing: exit statuses, -q, --version, Ctrl-C, output paths checked
before a run, defaults from the signatures, a parser that runs nothing, and the one
vocabulary (fork_modes, fork_mode, gc_modes, thp) with the old spellings deprecated."""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import cowsim
from cowsim.cli import build_parser, main
from cowsim.experiments import (FORK_MODES, PREFORK_MODES, cowtest, fork_cost, prefork, snapshot, snapshot_sweep,
                                zygote)
from cowsim.experiments._fork_cost import DEFAULT_SIZES, DEFAULT_WRITE_FRACTIONS
from cowsim.host import probe

HOST = probe.unavailable_reason()

SMALL = {
    "fork-cost": ["--sizes", "1MiB", "--write-fractions", "0,1", "--fork-modes", "cow"],
    "snapshot": ["--dataset", "1MiB", "--steps", "2", "--writes-per-step", "10"],
    "prefork": ["--objects", "1024", "--workers", "1", "--requests", "10", "--gc-every", "5", "--samples", "1"],
    "zygote": ["--preload", "1MiB", "--apps", "2"],
    "cowtest": ["--memory", "4MiB", "--rounds", "1", "--fork-modes", "cow"],
    "validate": ["--sim-only", "--only", "wipeonfork"],
    "demo": ["--ascii"],
    "version": [],
}


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# -- --version and -q --------------------------------------------------------------------------
def test_version_option_and_command(capsys):
    assert run(capsys, "--version") == (0, f"cowsim {cowsim.__version__}\n", "")
    assert run(capsys, "version") == (0, f"cowsim {cowsim.__version__}\n", "")


@pytest.mark.parametrize("command", list(SMALL))
def test_quiet_silences_stderr_on_every_command(capsys, command):
    status, out, err = run(capsys, command, *SMALL[command], "-q")
    assert (status, err) == (0, "") and out


@pytest.mark.skipif(HOST is not None, reason=f"kernel side unavailable: {HOST}")
def test_quiet_silences_calibrate(capsys):
    status, out, err = run(capsys, "calibrate", "--quick", "-q")
    assert (status, err) == (0, "") and json.loads(out)["quick"] is True


@pytest.mark.parametrize("command", ["fork-cost", "validate", "demo"])
def test_every_stderr_line_has_the_one_prefix(capsys, command):
    status, _, err = run(capsys, command, *SMALL[command])
    assert status == 0
    assert all(line.startswith("cowsim: ") for line in err.splitlines())


# -- exit statuses -----------------------------------------------------------------------------
def _scenario(tmp_path: Path, minflt: int) -> str:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "t", "steps": [
        {"op": "map", "region": "a", "pages": 4},
        {"op": "write", "region": "a", "expect": {"minflt": minflt}}]}))
    return str(path)


def test_validate_exit_statuses(capsys, tmp_path, monkeypatch):
    assert run(capsys, "validate", "--sim-only", "--scenario", _scenario(tmp_path, 4))[0] == 0
    status, out, _ = run(capsys, "validate", "--sim-only", "--scenario", _scenario(tmp_path, 5))
    assert status == 1 and "MISMATCH" in out                        # cowsim 4 faults, predicted 5
    status, _, err = run(capsys, "validate", "--no-such-option")
    assert status == 2 and "usage:" in err
    status, out, err = run(capsys, "validate", "--sim-only", "--only", "nonesuch")
    assert (status, out) == (2, "") and err.startswith("cowsim: error: ") and err.count("\n") == 1
    monkeypatch.setattr(probe.platform, "system", lambda: "Plan9")
    status, out, err = run(capsys, "validate", "--only", "wipeonfork")
    assert (status, out) == (3, "") and err == ("cowsim: error: the kernel side is unavailable: not Linux "
                                                "(this is Plan9) (use --sim-only)\n")


def test_calibrate_unavailable_host_exits_3(capsys, monkeypatch):
    monkeypatch.setattr(probe.platform, "system", lambda: "Plan9")
    status, out, err = run(capsys, "calibrate", "--quick", "-q")
    assert (status, out) == (3, "") and err.startswith("cowsim: error: ") and "not Linux" in err


def test_simulator_error_exits_2(capsys):
    status, out, err = run(capsys, "zygote", "--apps", "0")
    assert (status, out) == (2, "") and err == "cowsim: error: zygote: apps must be >= 1, got 0\n"


def test_ctrl_c_in_a_command_exits_130_in_process(capsys, monkeypatch):
    @functools.wraps(zygote)   # the parser reads zygote's defaults from the signature
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("cowsim.experiments.zygote", interrupted)
    assert run(capsys, "zygote", "-q") == (130, "", "cowsim: interrupted\n")


def test_ctrl_c_exits_130_without_a_traceback():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        # 32 GiB: a run of ~8 s here, so the signal (sent at its first log line) always lands
        # inside it -- with 4 GiB (~1 s) a loaded CI runner could finish first and exit 0
        [sys.executable, "-m", "cowsim", "fork-cost", "--sizes", "32GiB", "--fork-modes", "cow,eager"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=tempfile.gettempdir(),  # the repository root's cowsim/ has no core after a regular install
        # A CI runner started as a background job inherits SIGINT ignored, and Python then never
        # turns it into KeyboardInterrupt: the child starts with the default disposition, as in a shell.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    try:
        first = proc.stderr.readline()          # the first log line: the run has started
        assert first.startswith("cowsim: fork-cost:"), first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err and err.endswith("cowsim: interrupted\n") and out == ""


# -- output paths checked before the run -------------------------------------------------------
@pytest.mark.parametrize("argv, option", [
    (["fork-cost", "--plot", "/nonexistent/x.png"], "--plot"),     # the defaults: a run of minutes
    (["snapshot", "--plot", "/nonexistent/x.png"], "--plot"),
    (["calibrate", "-o", "/nonexistent/p.json"], "--output"),
])
def test_bad_output_path_fails_before_the_run(capsys, monkeypatch, argv, option):
    def boom(*args, **kwargs):  # anything that would start the run fails the test
        raise AssertionError("the run started before the output path was checked")

    import cowsim.host

    monkeypatch.setattr(cowsim.machine.Machine, "__init__", boom)
    monkeypatch.setattr(cowsim.host, "calibrate", boom)
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, "")
    assert err == f"cowsim: error: {option} {argv[-1]}: no such directory /nonexistent\n"   # no progress line


def test_output_path_that_is_a_directory_fails_first(capsys, tmp_path):
    status, out, err = run(capsys, "zygote", "--plot", str(tmp_path))
    assert (status, out, err) == (2, "", f"cowsim: error: --plot {tmp_path}: is a directory\n")


# -- the parser --------------------------------------------------------------------------------
def test_building_and_using_the_parser_runs_no_simulation(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a Machine was built")

    monkeypatch.setattr(cowsim.machine.Machine, "__init__", boom)
    parser = build_parser()
    args = parser.parse_args(["snapshot"])
    assert args.fork_mode == "cow"


def test_defaults_come_from_the_signatures():
    parser = build_parser()
    args = parser.parse_args(["fork-cost"])
    assert (args.sizes, args.fork_modes, args.write_fractions, args.thp) == \
        (list(DEFAULT_SIZES), None, list(DEFAULT_WRITE_FRACTIONS), "off")
    args = parser.parse_args(["prefork"])
    assert (args.objects, args.gc_modes, args.fork_mode, args.samples) == (1_000_000, list(PREFORK_MODES), "cow", 10)
    args = parser.parse_args(["snapshot"])
    assert (args.dataset, args.steps, args.rates, args.skews) == \
        (1 << 30, 32, [0, 256, 1024, 4096, 16384], [0.0, 0.8, 1.2])


def test_the_host_wing_never_imports_validation():
    # validation drives the host (validation.host_side runs a scenario through host.probe), never the reverse
    import ast

    found = []
    for path in (Path(cowsim.__file__).parent / "host").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and "validation" in (node.module or ""):
                found.append(f"{path.name}:{node.lineno}")
    assert found == []


def test_no_argparse_outside_the_cli_wing():
    root = Path(cowsim.__file__).parent
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if "argparse" in p.read_text(encoding="utf-8") and p.parent.name != "cli")
    assert users == []


@pytest.mark.parametrize("wing", ["cli", "host", "validation"])
def test_no_module_of_the_host_side_or_cli_over_600_lines(wing):
    root = Path(cowsim.__file__).parent / wing
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in root.glob("*.py")}
    assert sizes and max(sizes.values()) <= 600, sizes


# -- one vocabulary: the old spellings warn and give the same result --------------------------
def _same(a, b):
    assert dict(a.params) == dict(b.params)
    for name in a.table_names if hasattr(a, "table_names") else ():
        assert a.records(name, wallclock=False) == b.records(name, wallclock=False)
    assert a.records(wallclock=False) == b.records(wallclock=False)


@pytest.mark.parametrize("run_new, run_old", [
    (lambda: fork_cost(sizes=["1MiB"], fork_modes=["cow"], write_fractions=[0.5]),
     lambda: fork_cost(sizes=["1MiB"], modes=["cow"], write_fractions=[0.5])),
    (lambda: fork_cost(sizes=["4MiB"], fork_modes=["cow"], write_fractions=[1.0], thp="split"),
     lambda: fork_cost(sizes=["4MiB"], fork_modes=["cow"], write_fractions=[1.0], thp=True)),
    (lambda: fork_cost(sizes=["1MiB"], fork_modes=["cow"], write_fractions=[0.0], thp="off"),
     lambda: fork_cost(sizes=["1MiB"], fork_modes=["cow"], write_fractions=[0.0], thp=False)),
    (lambda: snapshot(dataset="1MiB", steps=2, writes_per_step=10, fork_mode="eager"),
     lambda: snapshot(dataset="1MiB", steps=2, writes_per_step=10, mode="eager")),
    (lambda: snapshot_sweep(writes_per_step=[5], skews=[0.0], dataset="1MiB", steps=2, fork_mode="odf"),
     lambda: snapshot_sweep(writes_per_step=[5], skews=[0.0], dataset="1MiB", steps=2, mode="odf")),
    (lambda: prefork(objects=1024, workers=1, requests=10, gc_every=5, samples=1, gc_modes=["freeze"]),
     lambda: prefork(objects=1024, workers=1, requests=10, gc_every=5, samples=1, modes=["freeze"])),
    (lambda: cowtest(memory="4MiB", rounds=1, fork_modes=["cow"]),
     lambda: cowtest(memory="4MiB", rounds=1, modes=["cow"])),
], ids=["fork_cost-modes", "fork_cost-thp-True", "fork_cost-thp-False", "snapshot-mode", "sweep-mode",
        "prefork-modes", "cowtest-modes"])
def test_old_keyword_spellings_warn_and_give_the_same_result(run_new, run_old):
    with pytest.warns(DeprecationWarning, match="deprecated"):
        old = run_old()
    _same(run_new(), old)


def test_new_names_are_in_the_params():
    assert fork_cost(sizes=["1MiB"], fork_modes=["cow"], write_fractions=[0.0]).params["fork_modes"] == ["cow"]
    assert fork_cost(sizes=["4MiB"], fork_modes=["cow"], write_fractions=[0.0],
                     thp="copy-huge").params["thp"] == "copy-huge"
    assert snapshot(dataset="1MiB", steps=1, writes_per_step=0).params["fork_mode"] == "cow"
    assert prefork(objects=1024, workers=1, requests=2, samples=1, gc_modes=["gc"]).params["gc_modes"] == ["gc"]
    assert cowtest(memory="4MiB", rounds=1, fork_modes=["odf"]).params["fork_modes"] == ["odf"]
    assert zygote(preload="1MiB", apps=1).params["fork_mode"] == "cow"
    assert FORK_MODES


def test_fork_cost_copy_huge_copies_the_whole_huge_page():
    r = fork_cost(sizes=["4MiB"], fork_modes=["cow"], write_fractions=[1.0], thp="copy-huge", seed=1)
    (row,) = r.records()
    assert (row["ptes_copied"], row["copied_after"]) == (2, 1024)     # two huge entries, 2 x 512 pages copied


def test_old_and_new_keyword_together_is_an_error():
    with pytest.raises(TypeError, match="fork_modes"):
        fork_cost(sizes=["1MiB"], modes=["cow"], fork_modes=["cow"])


@pytest.mark.parametrize("old, new, note", [
    (["fork-cost", "--sizes", "1MiB", "--write-fractions", "0.5", "--modes", "cow,odf"],
     ["fork-cost", "--sizes", "1MiB", "--write-fractions", "0.5", "--fork-modes", "cow,odf"], "--modes"),
    (["fork-cost", "--sizes", "4MiB", "--write-fractions", "1", "--fork-modes", "cow", "--thp"],
     ["fork-cost", "--sizes", "4MiB", "--write-fractions", "1", "--fork-modes", "cow", "--thp", "split"], "--thp"),
    (["snapshot", "--dataset", "1MiB", "--steps", "2", "--mode", "eager"],
     ["snapshot", "--dataset", "1MiB", "--steps", "2", "--fork-mode", "eager"], "--mode"),
    (["prefork", *SMALL["prefork"], "--modes", "nogc"], ["prefork", *SMALL["prefork"], "--gc-modes", "nogc"],
     "--modes"),
    (["cowtest", "--memory", "4MiB", "--rounds", "1", "--modes", "eager"],
     ["cowtest", "--memory", "4MiB", "--rounds", "1", "--fork-modes", "eager"], "--modes"),
])
def test_old_flags_print_a_deprecation_note_and_give_the_same_output(capsys, old, new, note):
    status_old, out_old, err_old = run(capsys, *old, "--csv")
    status_new, out_new, err_new = run(capsys, *new, "--csv")
    assert status_old == status_new == 0
    strip = [line for line in err_old.splitlines() if "deprecated" not in line]
    assert f"cowsim: warning: {note} " in err_old and "deprecated" not in err_new
    assert len(strip) == len(err_new.splitlines())

    def no_wall(csv_text):   # the wall-clock columns differ from run to run
        from csv import DictReader
        from io import StringIO
        return [{k: v for k, v in row.items() if not k.endswith("wall_ms") and k != "sim_fork_ms"}
                for row in DictReader(StringIO(csv_text))]

    assert no_wall(out_old) == no_wall(out_new)
    assert run(capsys, *old, "--csv", "-q")[2] == ""       # -q silences the note too
