#!/usr/bin/env python3
"""Counts a stage's tests from JUnit XML files (pytest, node --test, Playwright)
and ends with the shared line `N passed, N failed, N skipped`.

  junit_stage.py STAGE [--expect N] FILE...

A missing or unreadable file, fewer than N tests in all, or any skip is a
failure (a skip is a test that did not prove anything). With the shared
accounting of tests/lib/accounting.py when the tree has it, else the same
rules here. Exit status 0 only if nothing failed.
"""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"
sys.path.insert(0, str(LIB))
try:
    import accounting  # noqa: E402  (tests/lib, once there)
except ImportError:
    accounting = None


def outcomes(path):
    """(name, outcome, detail) per test case of a JUnit XML file."""
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".lstrip(":")
        failed = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if failed is not None:
            yield name, "fail", (failed.get("message") or failed.text or "")[:300]
        elif skipped is not None:
            yield name, "skip", (skipped.get("message") or "")[:300]
        else:
            yield name, "pass", ""


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    stage, files, expect = argv[0], [], 0
    args = iter(argv[1:])
    for arg in args:
        if arg == "--expect":
            expect = int(next(args))
        else:
            files.append(arg)
    rows = []
    for f in files:
        try:
            label = Path(f).parent.name if Path(f).stem == "junit" else Path(f).stem
            rows += [(f"{label}/{n}", o, d) for n, o, d in outcomes(f)]
        except (OSError, ET.ParseError) as e:
            rows.append((f"{stage}-harness/{Path(f).name}", "fail", f"no results: {e}"))
    tested = [r for r in rows if "-harness/" not in r[0]]
    if len(tested) < expect:
        rows.append((f"{stage}-harness/count", "fail", f"{len(tested)} tests reported, {expect} expected"))
    if accounting is not None:
        results = accounting.Results(stage, [], {}, {}, None)
        for name, outcome, detail in rows:
            results.record(name, {"pass": accounting.PASS, "fail": accounting.FAIL,
                                  "skip": accounting.SKIP}[outcome], detail)
        return results.finish(quiet_passes=False)
    counts = {"pass": 0, "fail": 0}
    for name, outcome, detail in rows:
        ok = outcome == "pass"
        counts["pass" if ok else "fail"] += 1
        why = "" if ok else f": {'skipped (not allowed): ' if outcome == 'skip' else ''}{detail}"
        print(f"{'PASS' if ok else 'FAIL'} {name}{why}")
    print(f"{stage}: {counts['pass']} passed, {counts['fail']} failed, 0 skipped")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
