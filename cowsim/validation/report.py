"""The validation report: a :class:`~cowsim.validation.compare.ValidationResult` as a text table."""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

if TYPE_CHECKING:
    from .compare import Row, ValidationResult

__all__ = ["format_table"]


_PROC_COLS = (("minflt", "flt"), ("copied", "copied"), ("segv", "segv"), ("data_sum", "data"))
_REGION_COLS = (
    ("mapped", "map"),
    ("Rss", "Rss"),
    ("Pss", "Pss"),
    ("Pss_Dirty", "Pss_Dty"),
    ("Shared_Clean", "Sh_Cln"),
    ("Shared_Dirty", "Sh_Dty"),
    ("Private_Clean", "Pr_Cln"),
    ("Private_Dirty", "Pr_Dty"),
    ("Anonymous", "Anon"),
    ("AnonHugePages", "AnHuge"),
)
# shown only when some row has them (scenarios with files)
_FILE_PROC_COLS = (("majflt", "maj"), ("sigbus", "bus"), ("RssFile", "RsFile"), ("RssAnon", "RsAnon"),
                   ("RssShmem", "RsShm"))
_FILE_REGION_COLS = (("Pss_File", "PssFile"), ("size", "size"), ("cached", "cached"), ("folios", "folios"),
                     ("dirty", "dirty"), ("large", "large"))


def _cell(r: Optional[Row]) -> str:
    if r is None:
        return ""
    k, c, e = r.kernel, r.cowsim, r.expected
    if r.noise:
        return "K~" + "/".join("." if v is None else str(v) for v in r.kernel_seen) + f"|S{c}"
    if k is None and c is None:
        return "."
    if k is not None and c is not None and abs(k - c) > r.tolerance:
        return f"K{k}|S{c}"
    v = c if c is not None else k
    if e is not None:
        return f"{v}*" if r.match else f"{v}(e{e})"
    return str(v)


def format_table(res: "ValidationResult", all_regions: bool = False) -> str:
    """The rows as a text table (see ``ValidationResult.to_table``)."""
    lines: List[str] = []
    info = res.kernel_info
    if info:
        lines.append(
            f"kernel: Linux {info.get('release', '?')} {info.get('machine', '')}, {info.get('cpu', '?')}, "
            f"page size {info.get('page_size', '?')}, fault_around {info.get('fault_around_bytes', '?')}"
            + (f", files in {info['file_dir']} ({info.get('file_fs', '?')}, read_ahead_kb "
               f"{info.get('readahead_kb', '?')})" if "file_dir" in info else "")
        )
    else:
        lines.append(f"kernel: not run ({res.kernel_skipped or 'disabled'}); cowsim against the predictions only")
    lines.append("cowsim: " + ", ".join(f"{k}={v}" for k, v in res.simulator.items()))
    lines.append("cells: v = kernel and cowsim agree; v* = and equal the stated prediction; "
                 "K|S = kernel|cowsim differ; v(eN) = prediction N missed; . = not measured; "
                 "K~a/b|S = kernel runs disagreed (noise)")
    present = {r.metric for r in res.rows}
    proc_cols = _PROC_COLS + tuple(c for c in _FILE_PROC_COLS if c[0] in present)
    region_cols = _REGION_COLS + tuple(c for c in _FILE_REGION_COLS if c[0] in present)
    headers = ["#", "step", "proc", *[h for _, h in proc_cols], "region", *[h for _, h in region_cols], "ok"]
    body: List[List[str]] = []
    seps: List[int] = []
    by_scenario: Dict[str, List[Row]] = {}
    for r in res.rows:
        by_scenario.setdefault(r.scenario, []).append(r)
    for name, rows in by_scenario.items():
        seps.append(len(body))
        desc = res.descriptions.get(name, "")
        body.append([f"== {name}" + (f": {desc}" if desc else "")])
        if name in res.skipped:
            body.append([f"   kernel side skipped: {res.skipped[name]}"])
        if res.kernel_runs.get(name, 0) > 1:
            body.append([f"   kernel side run {res.kernel_runs[name]} times (the first run disagreed): "
                         + _runs_note(rows)])
        groups: Dict[Tuple[int, str], List[Row]] = {}
        for r in rows:
            groups.setdefault((r.step, r.proc), []).append(r)
        for (step, proc), grp in groups.items():
            proc_rows = {r.metric: r for r in grp if not r.region}
            regions: Dict[str, Dict[str, Row]] = {}
            for r in grp:
                if r.region:
                    regions.setdefault(r.region, {})[r.metric] = r
            shown = []
            for region, cells in regions.items():
                quiet = all(
                    (x.kernel in (0, None)) and (x.cowsim in (0, None)) and x.expected is None and x.match is not False
                    for x in cells.values()
                )
                if all_regions or not quiet:
                    shown.append(region)
            if not shown:
                shown = [""]
            first = True
            for region in shown:
                cells = regions.get(region, {})
                group_rows = list(cells.values()) + (list(proc_rows.values()) if first else [])
                ok = "FAIL" if any(x.match is False for x in group_rows) else (
                    "ok" if any(x.match for x in group_rows) else "-")
                line = [str(step) if first else "", grp[0].action if first else "", proc if first else ""]
                line += [(_cell(proc_rows.get(m)) if first else "") for m, _ in proc_cols]
                line += [region] + [_cell(cells.get(m)) for m, _ in region_cols] + [ok]
                body.append(line)
                first = False
    widths = [len(h) for h in headers]
    for line in body:
        if len(line) == len(headers):
            widths = [max(w, len(c)) for w, c in zip(widths, line)]
    left = {1, 2, 3 + len(proc_cols)}

    def fmt(line: List[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()

    lines.append(fmt(headers))
    for line in body:
        lines.append(line[0] if len(line) == 1 else fmt(line))
    n, bad, noisy = len(res.compared), len(res.mismatches), len(res.noise)
    lines.append(
        f"{n} values compared, {bad} mismatch{'es' if bad != 1 else ''}"
        + (f", {noisy} kernel noise" if noisy else "") + f": {res.verdict}"
    )
    if res.kernel_runs:
        total = sum(res.kernel_runs.values())
        again = sorted(name for name, k in res.kernel_runs.items() if k > 1)
        plural = "s" if len(res.kernel_runs) != 1 else ""
        lines.append(f"kernel runs: {total} for {len(res.kernel_runs)} scenario{plural}"
                     + (f" (re-run: {', '.join(f'{a} x{res.kernel_runs[a]}' for a in again)})" if again else ""))
    for name, why in res.skipped.items():
        lines.append(f"skipped on the kernel side: {name}: {why}")
    for w in res.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def _runs_note(rows: List[Row]) -> str:
    """The values the kernel runs disagreed on, for the table."""
    parts = []
    for r in rows:
        if r.kernel_seen:
            where = f"step {r.step} {r.proc} {r.region + '.' if r.region else ''}{r.metric}"
            seen = ", ".join("." if v is None else str(v) for v in r.kernel_seen)
            parts.append(f"{where} gave {seen}" + (" (noise)" if r.noise else f" (settled {r.kernel})"))
    return "; ".join(parts) if parts else "the re-runs gave the first run's values"
