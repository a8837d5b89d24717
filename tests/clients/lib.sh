# Shell helpers of the client-package stages (run-clients-tests.sh,
# run-clients-e2e.sh). Source it from the repository root after tests/e2e/lib.sh.
#   clients_debs PKG...   install Debian packages that are missing (by binary)
#   clients_node          clients/node's npm packages (npm ci; no browser download)
#   clients_python        .venv with pytest, python-fido2, cryptography, selenium and
#                         the ferrokey package installed from clients/python

clients_debs() {
  local need=() pkg
  for pkg in "$@"; do
    case "$pkg" in
      nodejs) command -v node >/dev/null || need+=(nodejs) ;;
      npm) command -v npm >/dev/null || need+=(npm) ;;
      chromium) [ -x /usr/lib/chromium/chromium ] || need+=(chromium) ;;
      chromium-driver) [ -x /usr/bin/chromedriver ] || need+=(chromium-driver) ;;
      *) dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg") ;;
    esac
  done
  [ ${#need[@]} -gt 0 ] || return 0
  stage "Debian packages: ${need[*]}"
  local sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=300 update
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -q -o DPkg::Lock::Timeout=300 install -y \
    --no-install-recommends "${need[@]}"
}

clients_node() {
  local want have
  want=$(sha256sum clients/node/package-lock.json | cut -c1-16)
  have=$(cat clients/node/node_modules/.ferrokey-lock 2>/dev/null || true)
  [ "$want" = "$have" ] && return 0
  stage "npm packages (clients/node: npm ci, no browser download)"
  (cd clients/node && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund) &&
    echo "$want" > clients/node/node_modules/.ferrokey-lock
}

clients_python() {
  stage "python venv (.venv: pytest, fido2, selenium, the ferrokey package)"
  e2e_venv
  .venv/bin/python - 2>/dev/null <<'PY' || .venv/bin/pip install -q --disable-pip-version-check \
      "pytest>=8,<10" "selenium>=4.40,<5" "cryptography>=41" "mypy>=1.10,<2"
import pytest, selenium, cryptography, mypy  # noqa: F401
PY
  # Always from the tree (not editable): what `pip install ./clients/python` gives.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --force-reinstall ./clients/python
  rm -rf clients/python/build clients/python/src/ferrokey.egg-info
}
