#!/usr/bin/env bash
# Mutation scores per module of issue 16: runs cargo-mutants on each named
# module (all of them when none is named) and prints, per module, the mutants
# caught by a failing test, caught by a hanging test (timeout), missed and
# unviable, and the score (caught + timeout) / (caught + timeout + missed).
#
#   tests/mutants/run-modules.sh [--out DIR] [MODULE ...]
#   modules: make-credential get-assertion credential-management u2f store
#            credential-wrapping ctaphid pin-uv
#
# Runs --in-place (cargo-mutants restores each file): use a worktree you are
# not editing. Builds are incremental (CARGO_INCREMENTAL=1): a mutant costs a
# few seconds instead of a full rebuild of the core. Exit 1 when a module
# scores under 90 %.
set -euo pipefail -f  # -f: the module globs go to cargo-mutants unexpanded
cd "$(dirname "$0")/../.."
out=/tmp/ferrokey-mutants
if [ "${1:-}" = --out ]; then out=$2; shift 2; fi
VERSION=27.1.0
tools=${FERROKEY_TOOLS:-$HOME/.cache/ferrokey/tools}
export PATH="$tools/bin:$PATH" CARGO_INCREMENTAL=1
if ! cargo mutants --version 2>/dev/null | grep -qx "cargo-mutants $VERSION"; then
  cargo install -q --locked "cargo-mutants@$VERSION" --root "$tools"
fi

files_of() {
  case "$1" in
    make-credential) echo src/ctap2/make_credential.rs ;;
    get-assertion) echo src/ctap2/get_assertion.rs ;;
    credential-management) echo 'src/ctap2/credential_management*' ;;
    u2f) echo 'src/ctap1*' ;;
    store) echo 'src/store*' ;;
    credential-wrapping) echo 'src/credential*' src/crypto/wrap.rs ;;
    ctaphid) echo 'src/ctaphid/**' ;;
    pin-uv) echo 'src/pin/**' 'src/ctap2/pin_uv*' src/ctap2/client_pin.rs ;;
    *) return 1 ;;
  esac
}

modules=("$@")
[ ${#modules[@]} = 0 ] && modules=(make-credential get-assertion credential-management u2f store credential-wrapping ctaphid pin-uv)
mkdir -p "$out"
low=0
for module in "${modules[@]}"; do
  globs=$(files_of "$module") || { echo "unknown module $module" >&2; exit 2; }
  args=()
  for g in $globs; do args+=(-f "$g"); done
  nice -n 10 cargo mutants --in-place "${args[@]}" -o "$out/$module" > "$out/$module.log" 2>&1 || true
  dir=$out/$module/mutants.out
  count() { [ -f "$dir/$1.txt" ] && wc -l < "$dir/$1.txt" || echo 0; }
  caught=$(count caught) timeout=$(count timeout) missed=$(count missed) unviable=$(count unviable)
  viable=$((caught + timeout + missed))
  score=$(( viable == 0 ? 100 : (caught + timeout) * 1000 / viable ))
  printf '%-22s caught %4d  timeout %3d  missed %3d  unviable %3d  score %d.%d %%\n' \
    "$module" "$caught" "$timeout" "$missed" "$unviable" $((score / 10)) $((score % 10))
  [ "$missed" = 0 ] || sed 's/^/    MISSED /' "$dir/missed.txt"
  [ "$score" -ge 900 ] || low=1
done
exit $low
