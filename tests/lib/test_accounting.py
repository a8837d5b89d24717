"""Unit tests of accounting.py: python3 tests/lib/test_accounting.py"""
import io
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True
from accounting import ListError, Results, load_expectations, load_known_failures  # noqa: E402


def run(r):
    out = io.StringIO()
    status = r.finish(out=out)
    return status, out.getvalue().strip().splitlines()[-1], out.getvalue()


class AccountingTest(unittest.TestCase):
    def test_all_pass(self):
        r = Results("s", ["a", "b"])
        r.passed("a")
        r.passed("b")
        self.assertEqual(run(r)[:2], (0, "2 passed, 0 failed, 0 skipped"))

    def test_missing_result_fails(self):
        r = Results("s", ["a", "b"])
        r.passed("a")
        status, last, text = run(r)
        self.assertEqual((status, last), (1, "1 passed, 1 failed, 0 skipped"))
        self.assertIn("FAIL b: did not run", text)

    def test_unlisted_skip_fails_and_listed_skip_counts_as_skip(self):
        r = Results("s", allowed_skips={"t::x": "no bio"})
        r.skipped("t::x", "not supported")
        r.skipped("t::y", "not supported")
        status, last, text = run(r)
        self.assertEqual((status, last), (1, "0 passed, 1 failed, 1 skipped"))
        self.assertIn("FAIL t::y: skipped", text)

    def test_allowed_skip_that_passes_fails(self):
        r = Results("s", allowed_skips={"t::x": "no bio"})
        r.passed("t::x")
        self.assertEqual(run(r)[0], 1)

    def test_glob_allowed_skips_do_not_complain_when_a_match_passes(self):
        r = Results("s", allowed_skips={"t_bio::*": "no bio"})
        r.passed("t_bio::a")
        r.skipped("t_bio::b", "x")
        self.assertEqual(run(r)[:2], (0, "1 passed, 0 failed, 1 skipped"))

    def test_known_failure_xfail_and_xpass(self):
        r = Results("s", known_failures={"c/x": "bug 1"})
        r.failed("c/x", "boom")
        self.assertEqual(run(r)[:2], (0, "0 passed, 0 failed, 1 skipped"))
        r = Results("s", known_failures={"c/x": "bug 1"})
        r.passed("c/x")
        status, last, text = run(r)
        self.assertEqual((status, last), (1, "0 passed, 1 failed, 0 skipped"))
        self.assertIn("XPASS", text)

    def test_stale_known_failure_fails(self):
        r = Results("s", known_failures={"gone": "old"})
        r.passed("a")
        self.assertEqual(run(r)[:2], (1, "1 passed, 1 failed, 0 skipped"))

    def test_pass_floor(self):
        r = Results("s", pass_floor=3)
        r.passed("a")
        r.passed("b")
        self.assertEqual(run(r)[:2], (1, "2 passed, 1 failed, 0 skipped"))

    def test_files(self):
        with tempfile.TemporaryDirectory() as d:
            k = Path(d) / "known"
            k.write_text("# comment\nchromium/x  waits for a fix\n\n")
            self.assertEqual(load_known_failures(k), {"chromium/x": "waits for a fix"})
            k.write_text("chromium/x\n")
            with self.assertRaises(ListError):
                load_known_failures(k)
            e = Path(d) / "exp"
            e.write_text("pass-floor 52\n[skip] bio enrollment not implemented\n"
                         "t_bio::a  # trailing comment\nt_bio::b\n")
            self.assertEqual(load_expectations(e), (52, {"t_bio::a": "bio enrollment not implemented",
                                                         "t_bio::b": "bio enrollment not implemented"}))
            e.write_text("t_bio::a\n")
            with self.assertRaises(ListError):
                load_expectations(e)


if __name__ == "__main__":
    result = unittest.main(exit=False).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed - len(result.skipped)} passed, {failed} failed, "
          f"{len(result.skipped)} skipped")
    sys.exit(1 if failed else 0)
