#!/usr/bin/env python3
"""Summary of a python-fido2 device-suite run (called by run-fido2-suite.sh).

  summarize.py RUN_DIR GUEST_STATUS T_START T_GUEST T_END [--keep]
  summarize.py --draft-expectations JUNIT_XML   (print a draft expectations file)

Reads RUN_DIR/junit.xml and accounts for it with tests/lib/accounting.py
against tests/conformance/expectations.txt: a pass floor, and the allowed
skips, each with its reason. A test that skips and is not listed fails the
stage (a feature that stops being advertised turns its tests into skips); a
listed test that passes fails it too (drop it from the list); fewer passes
than the floor fail it. The last line is `N passed, N failed, N skipped`.
"""
import collections
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))
sys.dont_write_bytecode = True
from accounting import ListError, Results, load_expectations  # noqa: E402

EXPECTATIONS = HERE / "expectations.txt"


def cases(junit):
    """[(test id, outcome, detail, seconds)] from a pytest junit.xml."""
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        mod = case.get("classname", "").rsplit(".", 1)[-1]
        name = f"{mod}.py::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skip = case.find("skipped")
        secs = float(case.get("time") or 0)
        if bad is not None:
            msg = (bad.get("message") or bad.text or "").strip().splitlines()
            out.append((name, "fail", msg[0][:200] if msg else "", secs))
        elif skip is not None:
            out.append((name, "skip", (skip.get("message") or "").strip(), secs))
        else:
            out.append((name, "pass", "", secs))
    return out


def draft(junit):
    rows = cases(junit)
    by_reason = collections.defaultdict(list)
    for name, outcome, detail, _ in rows:
        if outcome == "skip":
            by_reason[detail].append(name)
    passed = sum(1 for r in rows if r[1] == "pass")
    print(f"pass-floor {passed}")
    for reason, names in sorted(by_reason.items()):
        print(f"\n[skip] {reason}")
        for n in sorted(names):
            print(n)


def main():
    if sys.argv[1] == "--draft-expectations":
        draft(sys.argv[2])
        return 0
    run, status = Path(sys.argv[1]), int(sys.argv[2])
    t_start, t_guest, t_end = map(float, sys.argv[3:6])
    try:
        floor, skips = load_expectations(EXPECTATIONS)
    except ListError as e:
        print(f"conformance: {e}\n0 passed, 1 failed, 0 skipped")
        return 1
    results = Results("conformance (python-fido2 tests/device)", allowed_skips=skips, pass_floor=floor)
    suite_time = 0.0
    try:
        for name, outcome, detail, secs in cases(run / "junit.xml"):
            results.record(name, outcome, detail)
            suite_time += secs
    except (OSError, ET.ParseError) as e:
        results.failed("harness", f"no junit.xml from pytest ({e})")
    if status not in (0, 1):
        why = {124: "guest timeout", 125: "guest failed (attach?)"}.get(status, f"exit {status}")
        results.failed("harness", f"pytest/guest ended with status {status}: {why}")
    timing = {}
    if (run / ".vm" / "timing.json").exists():
        timing = json.loads((run / ".vm" / "timing.json").read_text())
    print(f"\ntimings: setup {t_guest - t_start:.1f}s, guest boot {timing.get('boot_s')}s, "
          f"tests {suite_time:.1f}s, guest wall {t_end - t_guest:.1f}s, total {t_end - t_start:.1f}s")
    code = results.finish(quiet_passes=True)
    if code or "--keep" in sys.argv:
        print(f"logs: {run}/pytest.log, {run}/ferrokey.log, {run}/reattach.log")
    return code


if __name__ == "__main__":
    sys.exit(main())
