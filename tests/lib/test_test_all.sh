#!/usr/bin/env bash
# Tests tools/test-all's own rules on a fake repository (stub cargo, stub stage
# scripts): a stage script that lost its executable bit is a FAILED stage, not
# a silent skip; a failing stage does not hide the later ones; the totals line
# adds up the stages' own closing lines. Prints `N passed, N failed, N skipped`.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/ferrokey-test-all-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/repo/tools" "$work/repo/tests/lib" "$work/repo/tests/e2e" "$work/repo/tests/browser" \
  "$work/repo/tests/conformance" "$work/repo/tests/mutants" "$work/repo/tests/control" \
  "$work/repo/tests/attestation" "$work/repo/tests/clients" "$work/bin" \
  "$work/repo/tests/lifecycle"
mkdir -p "$work/repo/tests/crash" "$work/repo/tests/soak"
cp "$repo/tools/test-all" "$work/repo/tools/"
cat > "$work/bin/cargo" <<'STUB'
#!/bin/sh
case "$1" in
  metadata) echo '{"target_directory": "/nonexistent"}' ;;
  test) echo "test result: ok. 7 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out" ;;
esac
exit 0
STUB
echo 'print("2 passed, 0 failed, 0 skipped")' > "$work/repo/tests/lib/test_accounting.py"
printf '#!/bin/sh\necho "1 passed, 0 failed, 0 skipped"\n' > "$work/repo/tests/lib/test_test_all.sh"
printf '#!/bin/sh\necho "6 passed, 0 failed, 0 skipped"\n' > "$work/repo/tests/control/run-control-tests.sh"
printf '#!/bin/sh\necho "2 passed, 0 failed, 0 skipped"\n' > "$work/repo/tests/attestation/run-attestation-tests.sh"
printf '#!/bin/sh\necho "3 passed, 0 failed, 0 skipped"\n' > "$work/repo/tests/lifecycle/run-lifecycle-tests.sh"
printf '#!/bin/sh\necho "FAIL uhid-transport: no hidraw node in 30 s"\necho "5 passed, 1 failed, 0 skipped"; exit 1\n' > "$work/repo/tests/e2e/run-kernel-e2e.sh"
printf '#!/bin/sh\necho "3 passed, 0 failed, 0 skipped"\n' > "$work/repo/tests/browser/run-browser-e2e.sh"
printf '#!/bin/sh\necho "4 passed, 0 failed, 0 skipped"\n' > "$work/repo/tests/conformance/run-fido2-suite.sh"
printf '#!/bin/sh\necho "clients-unit: 8 passed, 0 failed, 0 skipped"\n' > "$work/repo/tests/clients/run-clients-tests.sh"
printf '#!/bin/sh\necho "clients-browser: 7 passed, 0 failed, 0 skipped"\n' > "$work/repo/tests/clients/run-clients-e2e.sh"
printf '#!/bin/sh\necho "2 passed, 0 failed, 0 skipped"\n' > "$work/repo/tests/crash/run-crash-tests.sh"
printf '#!/bin/sh\necho "1 passed, 0 failed, 0 skipped"\n' > "$work/repo/tests/soak/run-soak.sh"
printf '#!/bin/sh\necho "10 passed, 0 failed, 0 skipped"\n' > "$work/repo/tools/fuzz-smoke"
chmod +x "$work/repo/tests/crash/run-crash-tests.sh" "$work/repo/tests/soak/run-soak.sh"
chmod +x "$work/bin/cargo" "$work/repo/tests/lib/test_test_all.sh" "$work/repo/tests/e2e/run-kernel-e2e.sh" \
  "$work/repo/tests/browser/run-browser-e2e.sh" "$work/repo/tests/control/run-control-tests.sh" \
  "$work/repo/tests/attestation/run-attestation-tests.sh" "$work/repo/tests/clients/run-clients-tests.sh" \
  "$work/repo/tests/clients/run-clients-e2e.sh" "$work/repo/tests/lifecycle/run-lifecycle-tests.sh" \
  "$work/repo/tools/fuzz-smoke"
# run-fido2-suite.sh is left without its executable bit.

out=$(cd "$work/repo" && PATH="$work/bin:$PATH" bash tools/test-all --no-mutants 2>&1)
status=$?
logs=$(sed -n 's/^== summary (logs in \(.*\))$/\1/p' <<< "$out")
case "$logs" in /tmp/ferrokey-test-all.*) rm -rf "$logs" ;; esac
passed=0 failed=0
check() { # description, command...
  if "${@:2}"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $1"; fi
}
check "exit status is non-zero" test "$status" -ne 0
check "the non-executable conformance script fails its stage" grep -q "^FAIL conformance: exit 126" <<< "$out"
check "the message names the script" grep -q "run-fido2-suite.sh is missing or not executable" <<< "$out"
check "the kernel failure is reported" grep -q "^FAIL kernel: exit 1; 5 passed, 1 failed" <<< "$out"
check "the summary repeats why the kernel stage failed" grep -q "^     | FAIL uhid-transport: no hidraw node in 30 s" <<< "$out"
check "the browser stage still ran after the kernel failure" grep -q "^PASS browsers: exit 0; 3 passed" <<< "$out"
check "the host stages ran" grep -q "^PASS control: exit 0; 6 passed" <<< "$out"
check "the attestation stage ran" grep -q "^PASS attestation: exit 0; 2 passed" <<< "$out"
check "the lifecycle stage ran" grep -q "^PASS lifecycle: exit 0; 3 passed" <<< "$out"
check "the client stages ran" grep -q "^PASS clients-browser: exit 0; clients-browser: 7 passed" <<< "$out"
check "the crash-consistency stage ran" grep -q "^PASS crash-consistency: exit 0; 2 passed" <<< "$out"
check "the soak stage ran" grep -q "^PASS soak: exit 0; 1 passed" <<< "$out"
check "the totals add up the stages" test "$(tail -n1 <<< "$out")" = "57 passed, 2 failed, 1 skipped"
out_no_soak=$(cd "$work/repo" && PATH="$work/bin:$PATH" bash tools/test-all --no-mutants --no-soak 2>&1)
logs=$(sed -n 's/^== summary (logs in \(.*\))$/\1/p' <<< "$out_no_soak")
case "$logs" in /tmp/ferrokey-test-all.*) rm -rf "$logs" ;; esac
check "--no-soak leaves the soak out" grep -q "^SKIP soak: left out" <<< "$out_no_soak"
check "--no-soak keeps crash-consistency" grep -q "^PASS crash-consistency: exit 0" <<< "$out_no_soak"
check "the fuzz stage ran" grep -q "^PASS fuzz: exit 0; 10 passed" <<< "$out"
no_fuzz=$(cd "$work/repo" && PATH="$work/bin:$PATH" bash tools/test-all --no-mutants --no-fuzz 2>&1)
logs2=$(sed -n 's/^== summary (logs in \(.*\))$/\1/p' <<< "$no_fuzz")
case "$logs2" in /tmp/ferrokey-test-all.*) rm -rf "$logs2" ;; esac
check "--no-fuzz reports the fuzz stage as skipped" grep -q "^SKIP fuzz: left out" <<< "$no_fuzz"
check "--no-fuzz leaves the fuzz counts out" test "$(tail -n1 <<< "$no_fuzz")" = "47 passed, 2 failed, 1 skipped"
if [ "$failed" != 0 ]; then
  echo "--- test-all output:"; echo "$out"
fi
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
