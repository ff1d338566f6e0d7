# Shared by scripts/test and scripts/bench-load: messages, privileges and
# Debian package installs. Source it; it defines functions and variables only.

section() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
show_log() { [[ -f $1 ]] && tail -n "${2:-20}" "$1" | sed 's/^/    | /' >&2 || true; }

# --- privileges ----------------------------------------------------------
IS_ROOT=0
[[ $(id -u) == 0 ]] && IS_ROOT=1
SUDO=()
if [[ $IS_ROOT == 0 ]] && command -v sudo >/dev/null; then SUDO=(sudo); fi
can_install() { [[ $IS_ROOT == 1 || ${#SUDO[@]} -gt 0 ]]; }

# apt sometimes fails transiently ("cannot access archive"), hence retries.
apt_install() {
  local log attempt
  log="$(mktemp)"
  for attempt in 1 2 3; do
    if "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 &&
      "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "$@" >>"$log" 2>&1; then
      rm -f "$log"
      return 0
    fi
    note "apt-get install $* failed (attempt $attempt of 3):"
    show_log "$log" 5
    [[ $attempt == 3 ]] || sleep $((attempt * 5))
  done
  rm -f "$log"
  return 1
}

