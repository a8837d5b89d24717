"""Pass/fail accounting shared by every test stage (kernel, browsers,
conformance, and tools/test-all over the stages).

One set of rules, so that no stage can turn missing evidence into a pass:

- Every expected test must report. One that did not is FAILED ("did not run").
- A test reports PASS, FAIL or SKIP (with a reason).
- A SKIP is allowed only if the stage's allowed-skip list names the test (with
  a reason). Any other skip FAILS: a feature that stops being advertised turns
  passes into skips, and that must not stay green. An allowed skip that passed
  is FAILED too ("remove it from the list"), so the list never goes stale.
- A known failure (a committed file; test and reason) that fails is XFAIL and
  counted as skipped; one that passes again is XPASS and FAILS ("remove it from
  the list"). A listed name that no test has is FAILED (a stale entry).
- A pass floor, when given: fewer passes than the floor FAILS the stage.
- The last line is `N passed, N failed, N skipped`; the exit status is 0 only
  with nothing failed.

Files (both optional, '#' starts a comment, blank lines ignored):

  known failures:   NAME  reason...          (one per line; reason required)
  expectations:     pass-floor N
                    [skip] reason...         (starts a group of allowed skips)
                    NAME                     (a test of the current group)

Command line (for shell stages):
  accounting.py summarize RESULTS.jsonl [--expect NAME]... [--known-failures FILE]
                [--expectations FILE] [--stage NAME]
RESULTS.jsonl holds one JSON object per line: {"name", "outcome": "pass"|"fail"|
"skip", "detail"}.
"""
import argparse
import fnmatch
import json
import sys
from pathlib import Path

PASS, FAIL, SKIP = "pass", "fail", "skip"


class ListError(ValueError):
    """A malformed known-failures or expectations file."""


def _lines(path):
    for n, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("[skip]") else raw.rstrip()
        if line.strip():
            yield n, line.strip()


def load_known_failures(path):
    """{name: reason} from a known-failures file (missing file: empty)."""
    if not path or not Path(path).exists():
        return {}
    out = {}
    for n, line in _lines(path):
        name, _, reason = line.partition(" ")
        if not reason.strip():
            raise ListError(f"{path}:{n}: known failure {name!r} has no reason")
        out[name] = reason.strip()
    return out


def load_expectations(path):
    """(pass_floor or None, {name_or_glob: reason}) from an expectations file."""
    if not path or not Path(path).exists():
        return None, {}
    floor, skips, reason = None, {}, None
    for n, line in _lines(path):
        if line.startswith("pass-floor"):
            try:
                floor = int(line.split()[1])
            except (IndexError, ValueError):
                raise ListError(f"{path}:{n}: pass-floor needs a number") from None
        elif line.startswith("[skip]"):
            reason = line[len("[skip]"):].strip()
            if not reason:
                raise ListError(f"{path}:{n}: [skip] without a reason")
        elif reason is None:
            raise ListError(f"{path}:{n}: {line!r} comes before any [skip] reason")
        else:
            skips[line] = reason
    return floor, skips


def _match(name, table):
    if name in table:
        return name
    return next((k for k in table if _is_glob(k) and fnmatch.fnmatchcase(name, k)), None)


def _is_glob(entry):
    """Entries with * or ? are shell patterns; anything else (pytest ids have
    [brackets]) matches exactly."""
    return "*" in entry or "?" in entry


class Results:
    """The results of one stage."""

    def __init__(self, stage, expected=(), known_failures=None, allowed_skips=None, pass_floor=None):
        self.stage = stage
        self.expected = list(expected)
        self.known = dict(known_failures or {})
        self.allowed = dict(allowed_skips or {})
        self.floor = pass_floor
        self.reported = {}  # name -> (outcome, detail)

    def expect(self, *names):
        for n in names:
            if n not in self.expected:
                self.expected.append(n)

    def record(self, name, outcome, detail=""):
        if outcome not in (PASS, FAIL, SKIP):
            raise ValueError(f"outcome {outcome!r}")
        self.reported[name] = (outcome, detail)
        self.expect(name)

    def passed(self, name, detail=""):
        self.record(name, PASS, detail)

    def failed(self, name, detail=""):
        self.record(name, FAIL, detail)

    def skipped(self, name, reason):
        self.record(name, SKIP, reason)

    def verdicts(self):
        """[(label, name, detail, counted_as)] under the rules of the module doc."""
        out = []
        for name in self.expected:
            outcome, detail = self.reported.get(name, (FAIL, "did not run"))
            known = _match(name, self.known)
            allowed = _match(name, self.allowed)
            if known and outcome == FAIL:
                out.append(("XFAIL", name, f"{detail} (known failure: {self.known[known]})", SKIP))
            elif known and outcome == PASS:
                out.append(("FAIL", name, f"XPASS: listed as a known failure ({self.known[known]}) "
                                          "but passed; remove it from the list", FAIL))
            elif outcome == SKIP and allowed:
                out.append(("SKIP", name, f"{detail} (allowed: {self.allowed[allowed]})", SKIP))
            elif outcome == SKIP:
                out.append(("FAIL", name, f"skipped ({detail}) and not on the allowed-skip list", FAIL))
            elif outcome == PASS and allowed and allowed == name:
                out.append(("FAIL", name, f"passed but listed as an allowed skip "
                                          f"({self.allowed[allowed]}); remove it from the list", FAIL))
            else:
                out.append(("PASS" if outcome == PASS else "FAIL", name, detail, outcome))
        for name, reason in self.known.items():
            if not any(_match(n, {name: reason}) for n in self.expected):
                out.append(("FAIL", name, f"known-failure entry matches no test ({reason}); "
                                          "remove it from the list", FAIL))
        return out

    def counts(self):
        v = self.verdicts()
        n = {PASS: 0, FAIL: 0, SKIP: 0}
        for *_, counted in v:
            n[counted] += 1
        return v, n

    def finish(self, out=sys.stdout, quiet_passes=False):
        """Prints the verdicts and the closing line; returns the exit status."""
        verdicts, n = self.counts()
        print(f"\n== {self.stage}: results", file=out)
        for label, name, detail, _ in verdicts:
            if quiet_passes and label in ("PASS", "SKIP"):
                continue
            print(f"{label} {name}" + (f": {detail}" if detail else ""), file=out)
        if self.floor is not None and n[PASS] < self.floor:
            print(f"FAIL {self.stage}: {n[PASS]} passed, below the pass floor of {self.floor}",
                  file=out)
            n[FAIL] += 1
        print(f"\n{n[PASS]} passed, {n[FAIL]} failed, {n[SKIP]} skipped", file=out, flush=True)
        return 1 if n[FAIL] else 0


def summarize_file(results_path, stage, expected, known_path, expectations_path, quiet_passes):
    floor, skips = load_expectations(expectations_path)
    r = Results(stage, expected, load_known_failures(known_path), skips, floor)
    try:
        lines = Path(results_path).read_text().splitlines()
    except FileNotFoundError:
        lines = []
        r.failed(f"{stage}-harness", f"no results file {results_path}")
    for line in lines:
        if line.strip():
            d = json.loads(line)
            r.record(d["name"], d["outcome"], d.get("detail", ""))
    return r.finish(quiet_passes=quiet_passes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summarize")
    s.add_argument("results")
    s.add_argument("--stage", default="stage")
    s.add_argument("--expect", action="append", default=[])
    s.add_argument("--known-failures")
    s.add_argument("--expectations")
    s.add_argument("--quiet-passes", action="store_true")
    a = ap.parse_args(argv)
    try:
        return summarize_file(a.results, a.stage, a.expect, a.known_failures, a.expectations,
                              a.quiet_passes)
    except ListError as e:
        print(f"{a.stage}: {e}\n0 passed, 1 failed, 0 skipped")
        return 1


if __name__ == "__main__":
    sys.exit(main())
