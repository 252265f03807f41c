"""The experiment subcommands of the command line, run in-process through ``main(argv)``."""
from __future__ import annotations

import csv
import io
import json
import sys

import pytest

from cowsim.cli import main
from cowsim.experiments import FORK_MODES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Small runs of each subcommand (the defaults are sized for the README, not for tests).
SMALL = {
    "fork-cost": ["--sizes", "1MiB,2MiB", "--write-fractions", "0,50%,1"],
    "snapshot": ["--dataset", "2MiB", "--steps", "4", "--writes-per-step", "50"],
    "prefork": ["--objects", "4096", "--workers", "2", "--requests", "40", "--gc-every", "20", "--samples", "2"],
    "zygote": ["--preload", "1MiB", "--apps", "3", "--dirty-fraction", "25%"],
    "cowtest": ["--memory", "4MiB", "--rounds", "2"],
}
COMMANDS = list(SMALL)


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_defaults(capsys, command):
    status, out, _ = run(capsys, command, "--help")
    assert status == 0
    assert "(default:" in out
    for option in ("--cost-model", "--json", "--csv", "--plot"):
        assert option in out
    if command != "cowtest":
        assert "--seed" in out


def test_top_level_help_lists_the_experiments(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_table_on_stdout_log_on_stderr(capsys, command):
    status, out, err = run(capsys, command, *SMALL[command])
    assert status == 0
    assert out.strip() and out.endswith("\n")
    assert err.startswith("cowsim: ")  # log lines
    assert "\r" not in err and "%|" not in err  # no progress bar: stderr is not a terminal


@pytest.mark.parametrize("command", COMMANDS)
def test_quiet_silences_stderr(capsys, command):
    status, out, err = run(capsys, command, *SMALL[command], "-q")
    assert status == 0 and out and err == ""


@pytest.mark.parametrize("command", COMMANDS)
def test_json_output(capsys, command):
    status, out, _ = run(capsys, command, *SMALL[command], "-q", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["experiment"] == command
    assert set(data) == {"experiment", "params", "cost_model", "summary", "tables"}
    assert all(isinstance(rows, list) and rows for rows in data["tables"].values())


@pytest.mark.parametrize("command", COMMANDS)
def test_csv_output(capsys, command):
    status, out, _ = run(capsys, command, *SMALL[command], "-q", "--csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and all(len(r) == len(rows[0]) for r in rows)


def test_json_and_csv_exclude_each_other(capsys):
    status, _, err = run(capsys, "zygote", "--json", "--csv")
    assert status == 2 and "not allowed" in err


@pytest.mark.parametrize("command", ["fork-cost", "snapshot", "prefork", "zygote"])
def test_same_seed_same_output(capsys, command):
    extra = ["--no-timing"] if command == "fork-cost" else []
    first = run(capsys, command, *SMALL[command], *extra, "-q", "--seed", "5")
    second = run(capsys, command, *SMALL[command], *extra, "-q", "--seed", "5")
    assert first == second and first[0] == 0


def test_seed_changes_the_snapshot(capsys):
    a = run(capsys, "snapshot", *SMALL["snapshot"], "-q", "--json", "--seed", "1")[1]
    b = run(capsys, "snapshot", *SMALL["snapshot"], "-q", "--json", "--seed", "2")[1]
    assert json.loads(a)["tables"] != json.loads(b)["tables"]


def test_fork_cost_table(capsys):
    status, out, err = run(capsys, "fork-cost", *SMALL["fork-cost"])
    assert status == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("size"))
    for column in ("mode", "writes", "sim fork ms", "model fork ms", "frames@fork", "PT parent", "PT child",
                   "copied after", "peak frames", "saved pages", "saved MiB"):
        assert column in header
    rows = [line.split() for line in lines if line.startswith(("1MiB", "2MiB"))]
    spawn = lines.index(next(line for line in lines if line.startswith("spawn:")))
    assert len(rows) == 2 * len(FORK_MODES) * 3 + 2 * len(FORK_MODES)   # forks, then spawn
    assert "model fork+exec ms" in lines[spawn + 1]
    cow_zero = next(r for r in rows if r[:3] == ["1MiB", "cow", "0%"])
    assert cow_zero[-2:] == ["256", "1.0"]  # saved pages, saved MiB
    assert "fork-cost: done in" in err


def test_fork_cost_no_timing(capsys):
    _, out, _ = run(capsys, "fork-cost", *SMALL["fork-cost"], "-q", "--no-timing")
    assert "sim fork ms" not in out and "model fork ms" in out
    _, out, _ = run(capsys, "fork-cost", *SMALL["fork-cost"], "-q", "--no-timing", "--json")
    assert "fork_wall_ms" not in out and "run_wall_s" not in out


def test_fork_cost_modes_option(capsys):
    status, out, _ = run(capsys, "fork-cost", "--sizes", "1MiB", "--modes", "eager", "-q", "--csv")
    assert status == 0
    assert {r["mode"] for r in csv.DictReader(io.StringIO(out))} == {"eager"}


def test_fork_cost_thp_option(capsys):
    status, out, _ = run(capsys, "fork-cost", "--sizes", "2MiB", "--fork-modes", "cow", "--write-fractions", "0",
                         "--thp", "split", "-q", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["params"]["thp"] == "split"   # a bool before the one vocabulary (bare --thp: tests/test_cli_house.py)
    assert data["tables"]["forks"][0]["ptes_copied"] == 1    # one huge entry


def test_snapshot_sweep(capsys):
    status, out, _ = run(capsys, "snapshot", "--sweep", "--dataset", "1MiB", "--steps", "2",
                         "--rates", "0,100", "--skews", "0,1.1", "-q", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["experiment"] == "snapshot-sweep"
    assert len(data["tables"]["sweep"]) == 4


def test_snapshot_thp_option(capsys):
    status, out, _ = run(capsys, "snapshot", "--dataset", "4MiB", "--steps", "1", "--writes-per-step", "3",
                         "--thp", "copy-huge", "--seed", "2", "-q", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["params"]["thp"] == "copy-huge"
    assert data["tables"]["steps"][-1]["cow_pages"] % 512 == 0 and data["tables"]["steps"][-1]["cow_pages"] > 0
    status, _, err = run(capsys, "snapshot", "--thp", "bogus")
    assert status == 2 and "--thp" in err


def test_cowtest_reports_where_eager_fails(capsys):
    status, out, _ = run(capsys, "cowtest", *SMALL["cowtest"], "-q")
    assert status == 0
    assert "cow: ALL COW TESTS PASSED" in out
    assert "eager: FAILED" in out and "step 'fork'" in out and "OutOfMemory" in out


def test_cost_model_file(capsys, tmp_path):
    profile = tmp_path / "prices.json"
    profile.write_text(json.dumps({"fork_base_ns": 1e6, "fork_per_pte_ns": 0, "fork_per_table_ns": 0}))
    status, out, _ = run(capsys, "fork-cost", "--sizes", "1MiB", "--modes", "cow", "--write-fractions", "0",
                         "--cost-model", str(profile), "-q", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["cost_model"]["fork_base_ns"] == 1e6
    assert data["tables"]["forks"][0]["fork_model_ms"] == 1.0


@pytest.mark.parametrize(
    "content, needle",
    [(None, "cannot read"), ("{not json", "not JSON"), ('{"fault_ns": -5}', "fault_ns")],
)
def test_bad_cost_model_is_one_line(capsys, tmp_path, content, needle):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    status, out, err = run(capsys, "zygote", *SMALL["zygote"], "--cost-model", str(path))
    assert status == 2 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("cowsim: error:")]
    assert len(lines) == 1 and needle in lines[0] and "cost_model" in lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["fork-cost", "--sizes", "12XB"],
        ["fork-cost", "--sizes", ","],
        ["fork-cost", "--modes", "cow,teleport"],
        ["fork-cost", "--write-fractions", "150%"],
        ["zygote", "--dirty-fraction", "x"],
        ["snapshot", "--mode", "lazy"],
        ["prefork", "--modes", "gc,maybe"],
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert "usage:" in err


@pytest.mark.parametrize(
    "argv, name",
    [
        (["snapshot", "--dataset", "1MiB", "--steps", "0"], "steps"),
        (["prefork", "--object-size", "4"], "object_size"),
        (["zygote", "--apps", "0"], "apps"),
        (["cowtest", "--memory", "16KiB"], "memory"),
        (["fork-cost", "--sizes", "1MiB", "--seed", "-3"], "seed"),
    ],
)
def test_invalid_values_are_one_line_errors(capsys, argv, name):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("cowsim: error:") and name in err


@pytest.mark.parametrize("command", COMMANDS)
def test_plot_writes_a_png(capsys, tmp_path, command):
    pytest.importorskip("matplotlib")
    path = tmp_path / f"{command}.png"
    status, _, err = run(capsys, command, *SMALL[command], "--plot", str(path))
    assert status == 0
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert f"figure written to {path}" in err


def test_plot_without_matplotlib_exits_2_before_running(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    path = tmp_path / "x.png"
    status, out, err = run(capsys, "zygote", *SMALL["zygote"], "--plot", str(path))
    assert status == 2 and out == "" and not path.exists()
    assert err.count("\n") == 1 and "matplotlib" in err and "pip install" in err
