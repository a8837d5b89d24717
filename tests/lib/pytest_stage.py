"""Runs a pytest suite as a test stage: pytest's own output, then the shared
accounting (tests/lib/accounting.py) over its JUnit results, so the stage ends
with `N passed, N failed, N skipped` and any skip fails unless an expectations
file allows it.

Usage: python tests/lib/pytest_stage.py STAGE [--expectations FILE] -- PYTEST_ARGS...
(run it with the interpreter that has pytest: .venv/bin/python).
"""
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accounting  # noqa: E402


def junit_outcomes(path):
    """(name, outcome, detail) per test case of a JUnit XML file."""
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".lstrip(":")
        failed = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if failed is not None:
            yield name, accounting.FAIL, (failed.get("message") or "")[:300]
        elif skipped is not None:
            yield name, accounting.SKIP, (skipped.get("message") or "")[:300]
        else:
            yield name, accounting.PASS, ""


def main(argv):
    if "--" not in argv or not argv:
        print(__doc__)
        return 2
    split = argv.index("--")
    head, pytest_args = argv[:split], argv[split + 1:]
    stage = head[0]
    expectations = head[head.index("--expectations") + 1] if "--expectations" in head else None
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        status = subprocess.call([sys.executable, "-m", "pytest", f"--junitxml={junit}",
                                  "-p", "no:cacheprovider", *pytest_args])
        floor, skips = accounting.load_expectations(expectations)
        results = accounting.Results(stage, [], {}, skips, floor)
        if not junit.exists():
            results.failed(f"{stage}-harness", f"pytest exited {status} without results")
        else:
            for name, outcome, detail in junit_outcomes(junit):
                results.record(name, outcome, detail)
            if status not in (0, 1):  # 1: tests failed (counted); else a usage/internal error
                results.failed(f"{stage}-harness", f"pytest exited {status}")
            elif not list(junit_outcomes(junit)):
                results.failed(f"{stage}-harness", "pytest collected no tests")
        return results.finish(quiet_passes=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
