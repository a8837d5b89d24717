#!/usr/bin/env bash
# The mutation-testing sample that CI runs (a few mutants, a couple of minutes):
# every mutant matched by tests/mutants/sample.txt must be caught by the core's
# unit tests (.cargo/mutants.toml). A sample line that matches no mutant fails
# too (the code moved: update the line). Prints `N passed, N failed, N skipped`
# (passed = mutants caught).
#
# Installs cargo-mutants $VERSION into ${FERROKEY_TOOLS:-$HOME/.cache/ferrokey/tools}
# when missing. Runs --in-place (cargo-mutants restores each file after its
# mutant); do not interrupt it in a working tree with unsaved edits.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=27.1.0
tools=${FERROKEY_TOOLS:-$HOME/.cache/ferrokey/tools}
export PATH="$tools/bin:$PATH"
if ! cargo mutants --version 2>/dev/null | grep -qx "cargo-mutants $VERSION"; then
  echo "== installing cargo-mutants $VERSION into $tools"
  cargo install -q --locked "cargo-mutants@$VERSION" --root "$tools"
fi

files=() patterns=()
while read -r file regex; do
  case "$file" in ''|'#'*) continue ;; esac
  files+=("$file")
  patterns+=("^$(printf '%s' "$file" | sed 's/[.]/\\./g'):[0-9]+:[0-9]+: $regex")
done < tests/mutants/sample.txt

# (-f as well as --re: cargo-mutants 27 lets some mutants through --re alone.)
failed=0 args=()
for f in "${files[@]}"; do args+=(-f "$f"); done
for p in "${patterns[@]}"; do
  n=$(cargo mutants --list "${args[@]}" --re "$p" | grep -cE "$p" || true)
  if [ "$n" = 0 ]; then
    echo "FAIL sample line matches no mutant: $p"
    failed=$((failed + 1))
  fi
  args+=(--re "$p")
done

out=$(mktemp -d /tmp/ferrokey-mutants-sample.XXXXXX)
set +e
cargo mutants --in-place "${args[@]}" -o "$out"
set -e
caught=$(wc -l < "$out/mutants.out/caught.txt")
missed=$(cat "$out/mutants.out/missed.txt" "$out/mutants.out/timeout.txt" 2>/dev/null | wc -l)
unviable=$(wc -l < "$out/mutants.out/unviable.txt")
if [ "$missed" != 0 ]; then
  echo "mutants that no test caught:"
  cat "$out/mutants.out/missed.txt" "$out/mutants.out/timeout.txt" 2>/dev/null | sed 's/^/  MISSED /'
fi
if [ "$caught" = 0 ] && [ "$failed" = 0 ]; then
  echo "FAIL no mutant was caught (did the baseline fail? see $out/mutants.out)"
  failed=1
fi
echo "$caught passed, $((missed + failed)) failed, $unviable skipped"
[ "$missed" = 0 ] && [ "$failed" = 0 ] && rm -rf "$out"
[ "$missed" = 0 ] && [ "$failed" = 0 ]
