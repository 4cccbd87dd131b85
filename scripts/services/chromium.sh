# shellcheck shell=bash
# Headless Chromium for the web client's browser tests (test/browser/): Debian's `chromium`
# package, driven by playwright-core through its executable path (no browser download). Not a
# server: `up` installs it, `down` has nothing to stop. Sourced by services.sh (uses its helpers).

chromium_bin() {
  local b
  for b in "${CHROMIUM_PATH:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [[ -n $b && -x $b ]]; then
      printf '%s\n' "$b"
      return 0
    fi
  done
  return 1
}

up_chromium() {
  local bin
  if bin=$(chromium_bin); then
    report chromium "$bin" "installed"
    return 0
  fi
  apt_install chromium || die "chromium: not installed, and apt-get could not install it (install Debian's chromium, or set CHROMIUM_PATH)"
  bin=$(chromium_bin) || die "chromium: binary not found after install"
  report chromium "$bin" "installed (apt-get)"
}

down_chromium() {
  :
}

status_chromium() {
  local bin
  if bin=$(chromium_bin); then
    report chromium "$bin" "installed"
  else
    report chromium "-" "not installed (scripts/services.sh up chromium)"
  fi
}
