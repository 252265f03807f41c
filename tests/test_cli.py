"""The command line (``cowsim.cli``) and the seed demo (``cowsim.experiments.demo``).

The demo's numbers are checked exactly against what docs/SEMANTICS.md says a
fresh machine must do: frames are handed out 1, 2, 3, ... (root table at spawn,
the missing table levels on the way down before the data frame, the child's
tables at fork, the copy at the CoW fault), so every frame number, count and
flag of the scenario follows from the rules and the number of table levels.
"""
from __future__ import annotations

import doctest
import importlib.metadata
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

import cowsim
import cowsim.experiments.demo
from cowsim.cli import main
from cowsim.experiments.demo import STEP_TITLES, run_demo

TITLES = [
    "Step 1: A maps two pages",
    "Step 2: A writes both pages",
    "Step 3: A forks B (copy-on-write)",
    "Step 4: B writes page 0: fault, copy",
    "Step 5: A writes page 0: fault, reuse",
    "Step 6: B exits",
    "Step 7: A writes page 1: fault, reuse",
]
PAGE_SIZES = [4096, 16384, 65536]


# -- parsing the demo's output --------------------------------------------------------
def split_steps(text: str) -> Dict[str, str]:
    """Step title -> the text printed under it (up to the next title)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line in TITLES]
    assert [lines[i] for i in starts] == TITLES, "step titles missing or out of order"
    ends = starts[1:] + [len(lines)]
    return {lines[s]: "\n".join(lines[s + 1 : e]) for s, e in zip(starts, ends)}


PT_ROW = re.compile(r"^\s+(\d+)\s+0x([0-9a-f]+)\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+(.*))?$")
FRAME_ROW = re.compile(r"^\s+(\d+)\s+(page table|data)\s+(\d+)\s+(\d+)\s+(\S+)\s+(.*)$")
SUMMARY = re.compile(
    r"Physical frames in use: (\d+) of (\d+) \(data (\d+), page tables (\d+); free (\d+)\)"
)
COUNTER_ROW = re.compile(r"^\s+([AB]) \(pid \d+\)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)$")


def page_table(step: str, name: str, yes: str = "✓", no: str = "✗") -> Dict[int, Tuple[int, bool, bool, str]]:
    """{page index: (frame, writable, dirty, data)} printed for process ``name``."""
    lines = step.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^\s+{name} \(pid \d+\)", line))
    assert "page table" in lines[start]
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        match = PT_ROW.match(line)
        if not match:
            continue  # the column header
        marks = {yes: True, no: False}
        rows[int(match[1])] = (int(match[3]), marks[match[4]], marks[match[5]], match[6] or "")
    return rows


def frames(step: str) -> Dict[int, Tuple[str, int, int, str]]:
    """{frame: (kind, refcount, mapcount, flags)} from the frame table."""
    return {
        int(m[1]): (m[2], int(m[3]), int(m[4]), m[5])
        for m in (FRAME_ROW.match(line) for line in step.splitlines())
        if m
    }


def frame_summary(step: str) -> Tuple[int, int, int, int, int]:
    """(used, total, data, page tables, free)."""
    match = SUMMARY.search(step)
    assert match, step
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


def counters(step: str) -> Dict[str, Tuple]:
    """{name: (minflt, zero-fill, cow-copy, cow-reuse, copied, tables, Rss, Pss)}."""
    out = {}
    for line in step.splitlines():
        match = COUNTER_ROW.match(line)
        if match:
            nums = tuple(int(g) for g in match.groups()[1:7])
            tail = tuple(int(g) if g.isdigit() else g for g in match.groups()[7:])
            out[match[1]] = nums + tail
    return out


def levels_for(page_size: int, va_bits: int = 48) -> int:
    shift = page_size.bit_length() - 1
    return math.ceil((va_bits - shift) / (shift - 3))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- the demo ------------------------------------------------------------------------
def test_step_titles_are_stable() -> None:
    assert list(STEP_TITLES) == TITLES


def test_demo_prints_the_steps_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "demo")
    assert status == 0
    assert err == ""
    split_steps(out)  # asserts every title, in order
    assert "✓" in out and "✗" in out


@pytest.mark.parametrize("store_data", [True, False], ids=["data", "metadata"])
@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_demo_numbers_are_exact(capsys: pytest.CaptureFixture[str], page_size: int, store_data: bool) -> None:
    argv = ["demo", "--page-size", str(page_size)] + ([] if store_data else ["--metadata"])
    status, out, _ = run(capsys, *argv)
    assert status == 0
    steps = [split_steps(out)[t] for t in TITLES]
    L = levels_for(page_size)  # table frames per process, root included
    kb = page_size // 1024
    total = 64 - 1  # DEMO_FRAMES frames, less the zero page
    assert cowsim.experiments.demo.DEMO_FRAMES == 64
    a0, a1 = L + 1, L + 2  # A's data frames come after A's tables
    copy = 2 * L + 3  # after B's tables
    excl, anon, table = "ANON|EXCLUSIVE", "ANON", ("page table", 1, 0, "PAGETABLE")

    # Step 1: only A's root table.
    s = steps[0]
    assert page_table(s, "A") == {}
    assert frame_summary(s) == (1, total, 0, 1, total - 1)
    assert frames(s) == {1: table}
    assert counters(s) == {"A": (0, 0, 0, 0, 0, 1, 0, 0)}

    # Step 2: two zero-fill faults, L table frames, two exclusive data frames.
    s = steps[1]
    pt = page_table(s, "A")
    assert {k: v[:3] for k, v in pt.items()} == {0: (a0, True, True), 1: (a1, True, True)}
    assert frame_summary(s) == (L + 2, total, 2, L, total - L - 2)
    assert frames(s) == {
        **{f: table for f in range(1, L + 1)},
        a0: ("data", 1, 1, excl),
        a1: ("data", 1, 1, excl),
    }
    assert counters(s) == {"A": (2, 2, 0, 0, 0, L, 2 * kb, 2 * kb)}

    # Step 3: fork copies the tables; both sides share both frames, read-only.
    s = steps[2]
    for name in "AB":
        pt = page_table(s, name)
        assert {k: v[:3] for k, v in pt.items()} == {0: (a0, False, True), 1: (a1, False, True)}
    assert frame_summary(s) == (2 * L + 2, total, 2, 2 * L, total - 2 * L - 2)
    assert frames(s) == {
        **{f: table for f in range(1, L + 1)},
        a0: ("data", 2, 2, anon),
        a1: ("data", 2, 2, anon),
        **{f: table for f in range(L + 3, 2 * L + 3)},
    }
    assert counters(s) == {"A": (2, 2, 0, 0, 0, L, 2 * kb, kb), "B": (0, 0, 0, 0, 0, L, 2 * kb, kb)}

    # Step 4: B's write copies page 0 into a new frame; A keeps the old one.
    s = steps[3]
    a, b = page_table(s, "A"), page_table(s, "B")
    assert a[0][:3] == (a0, False, True) and a[1][:3] == (a1, False, True)
    assert b[0][:3] == (copy, True, True) and b[1][:3] == (a1, False, True)
    assert b[0][0] != a[0][0]
    assert frame_summary(s) == (2 * L + 3, total, 3, 2 * L, total - 2 * L - 3)
    f = frames(s)
    assert f[a0] == ("data", 1, 1, anon)
    assert f[a1] == ("data", 2, 2, anon)
    assert f[copy] == ("data", 1, 1, excl)
    pss = (2 * kb + kb) // 2  # one private page + half a shared one
    assert counters(s) == {"A": (2, 2, 0, 0, 0, L, 2 * kb, pss), "B": (1, 0, 1, 0, 1, L, 2 * kb, pss)}
    assert "(COW_COPY)" in s

    # Step 5: A's write reuses its frame: no copy, no new frame.
    s = steps[4]
    a = page_table(s, "A")
    assert a[0][:3] == (a0, True, True)
    assert frame_summary(s) == (2 * L + 3, total, 3, 2 * L, total - 2 * L - 3)
    assert frames(s)[a0] == ("data", 1, 1, excl)
    assert counters(s)["A"] == (3, 2, 0, 1, 0, L, 2 * kb, pss)
    assert "(COW_REUSE)" in s
    assert "machine: minflt 4, pages copied 1, forks 1" in s

    # Step 6: B exits; its copy and its tables are freed; A's page 1 stays read-only.
    s = steps[5]
    assert "B (pid 2): exited" in s
    assert {k: v[:3] for k, v in page_table(s, "A").items()} == {0: (a0, True, True), 1: (a1, False, True)}
    assert frame_summary(s) == (L + 2, total, 2, L, total - L - 2)
    assert frames(s) == {
        **{f: table for f in range(1, L + 1)},
        a0: ("data", 1, 1, excl),
        a1: ("data", 1, 1, anon),
    }
    assert counters(s) == {"A": (3, 2, 0, 1, 0, L, 2 * kb, 2 * kb), "B": (1, 0, 1, 0, 1, 0, "exited", "exited")}
    assert f"frames in use {2 * L + 3} " in s
    assert f"freed {L + 1}" in s

    # Step 7: A's write to page 1 reuses the frame B left behind.
    s = steps[6]
    assert {k: v[:3] for k, v in page_table(s, "A").items()} == {0: (a0, True, True), 1: (a1, True, True)}
    assert frames(s)[a1] == ("data", 1, 1, excl)
    assert counters(s)["A"] == (4, 2, 0, 2, 0, L, 2 * kb, 2 * kb)
    assert f"Summary: minor faults 5, pages copied 1, peak frames in use {2 * L + 3}." in out

    # The data column exists in data mode only, and shows what each side wrote.
    data = {k: v[3] for k, v in page_table(steps[3], "B").items()}
    if store_data:
        assert data == {0: "'B:first'", 1: "'A:second'"}
        assert page_table(steps[3], "A")[0][3] == "'A:first'"
        assert page_table(steps[4], "A")[0][3] == "'A:again'"
    else:
        assert data == {0: "", 1: ""}
        assert "data" not in [line.split()[-1] for line in out.splitlines() if "virtual address" in line]


def test_demo_ascii_option(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "demo", "--ascii")
    assert status == 0
    out.encode("ascii")  # nothing but ASCII
    step = split_steps(out)[TITLES[3]]
    b = page_table(step, "B", yes="yes", no="no")
    assert b[0][1:3] == (True, True) and b[1][1:3] == (False, True)


def test_demo_falls_back_to_ascii_when_the_stream_cannot_encode() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    run_demo(stream)
    text = raw.getvalue().decode("ascii")
    split_steps(text)
    assert " yes " in text


def test_run_demo_writes_to_the_current_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    run_demo(page_size=16384, store_data=False)
    split_steps(capsys.readouterr().out)


def test_demo_doctest() -> None:
    failed, attempted = doctest.testmod(cowsim.experiments.demo)
    assert attempted > 0 and failed == 0


# -- the command line ----------------------------------------------------------------
def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert "demo" in out and "version" in out


def test_demo_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "demo", "--help")
    assert status == 0
    assert "--page-size" in out and "(default: 4096)" in out and "--ascii" in out


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["demo", "--page-size", "5000"], ["demo", "--page-size", "4k"], ["demo", "--nope"]],
    ids=["no-command", "unknown-command", "bad-page-size", "non-int-page-size", "unknown-option"],
)
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], argv: List[str]) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert "usage: cowsim" in err


def test_cowsim_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise cowsim.InvalidArgument("something\nwent wrong")

    monkeypatch.setattr(cowsim.experiments.demo, "run_demo", broken)
    status, out, err = run(capsys, "demo")
    assert status == 2
    assert out == ""
    assert err == "cowsim: error: something went wrong\n"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "version")
    assert status == 0
    assert out == f"cowsim {cowsim.__version__}\n"
    assert cowsim.__version__ == importlib.metadata.version("cowsim")


def test_python_dash_m_cowsim_demo(tmp_path: Path) -> None:
    # Run from an empty directory, so the installed package is what runs.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "cowsim", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    split_steps(proc.stdout)


# -- what the tests import -----------------------------------------------------------
def test_tests_import_the_installed_cowsim() -> None:
    """The tests must exercise the installed package, not a bare source tree.

    An editable install maps ``cowsim`` to the project's source directory; a
    regular install puts it in site-packages, and then the imported module
    must be that copy (the source tree has no compiled ``_core`` there).
    """
    dist = importlib.metadata.distribution("cowsim")
    imported = Path(cowsim.__file__).resolve()
    direct_url = dist.read_text("direct_url.json")
    info = json.loads(direct_url) if direct_url else {}
    if info.get("dir_info", {}).get("editable"):
        project = Path(url2pathname(urlparse(info["url"]).path)).resolve()
        assert imported == project / "cowsim" / "__init__.py"
    else:
        assert imported == Path(str(dist.locate_file("cowsim/__init__.py"))).resolve()


# -- the README ----------------------------------------------------------------------
def test_readme_api_tour_runs_and_prints_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not beside tests/")
    code = re.search(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    assert code, "README.md has no python example"
    exec(compile(code[1], str(readme), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    comments = [
        line.split("# ", 1)[1]
        for line in code[1].splitlines()
        if line.lstrip().startswith("print(") and "# " in line
    ]
    assert len(printed) == len(comments)
    for out, comment in zip(printed, comments):
        assert comment.startswith(out), (out, comment)
