# shellcheck shell=bash
# Helpers shared by kernels/build-kernel.sh and kernels/build-initramfs.sh (sourced, not run).
# Everything here writes to stderr: stdout of the build scripts is reserved for artefact paths.

# The cache root: ${XDG_CACHE_HOME:-$HOME/.cache}/tsvmm (TSVMM_CACHE_DIR overrides it).
tsvmm_cache_root() {
  printf '%s\n' "${TSVMM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tsvmm}"
}

# log STEP MESSAGE...: one progress line on stderr, e.g. "[kernel] unpacking linux-source".
log() {
  local tag=$1
  shift
  printf '[%s] %s\n' "$tag" "$*" >&2
}

# die MESSAGE...: the message on stderr, exit 1. The message says what to do.
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# sha256 of stdin, hex only.
sha256_stdin() {
  sha256sum | cut -d' ' -f1
}

# deb_version PACKAGE: the installed version of a Debian package, empty when not installed.
deb_version() {
  dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null |
    awk '$1 == "ii" { print $2 }'
}

# ensure_debs TAG PACKAGE...: installs the Debian packages that are missing, with apt-get when
# running as root; otherwise fails, saying exactly which command to run.
ensure_debs() {
  local tag=$1
  shift
  command -v dpkg-query >/dev/null 2>&1 ||
    die "dpkg-query not found: these scripts expect Debian or Ubuntu; install the equivalents of: $*"
  local missing=() pkg
  for pkg in "$@"; do
    [[ -n "$(deb_version "$pkg")" ]] || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ $(id -u) -ne 0 ]]; then
    die "missing Debian packages: ${missing[*]}
  install them with:  sudo apt-get install -y --no-install-recommends ${missing[*]}
  then run this again."
  fi
  log "$tag" "installing missing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Wait (up to 5 min) for another apt/dpkg run to release its lock instead of failing at once.
  local apt=(apt-get -o DPkg::Lock::Timeout=300)
  if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2; then
    log "$tag" "apt-get install failed; refreshing the package lists and trying once more"
    "${apt[@]}" update >&2 || die "apt-get update failed: check the network access to the Debian mirror"
    "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2 ||
      die "apt-get install ${missing[*]} failed (see above)"
  fi
}

# run_logged TAG LOGFILE COMMAND...: runs COMMAND with its output appended to LOGFILE and, while
# it runs, prints "still building… N s, last line: …" on stderr every
# TSVMM_PROGRESS_INTERVAL (20) seconds. Returns COMMAND's exit status; on failure prints the
# tail of the log.
run_logged() {
  local tag=$1 logfile=$2
  shift 2
  local interval=${TSVMM_PROGRESS_INTERVAL:-20}
  local start=$SECONDS pid rc=0 last
  "$@" >>"$logfile" 2>&1 &
  pid=$!
  # If we are interrupted, do not leave the command running behind us.
  # shellcheck disable=SC2064  # $pid is meant to be expanded now
  trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null; exit 130" INT TERM
  local next=$((start + interval))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      last=$(tail -n 1 "$logfile" 2>/dev/null | cut -c1-120)
      log "$tag" "still building… $((SECONDS - start)) s, last line: ${last:-<none yet>}"
      next=$((SECONDS + interval))
    fi
  done
  wait "$pid" || rc=$?
  trap - INT TERM
  if ((rc != 0)); then
    printf '%s\n' "---- last 40 lines of $logfile ----" >&2
    tail -n 40 "$logfile" >&2 || true
    printf '%s\n' "---- end of log ----" >&2
  fi
  return "$rc"
}

# print_header_help FILE: the comment block at the top of FILE, without the shebang, the
# directive for ShellCheck and the leading "# ", as --help text.
print_header_help() {
  awk 'NR == 1 || /^# shellcheck / { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$1"
}

# parse_mode SCRIPT ARG [NAME...]: sets `mode` from a build script's one optional argument:
# none → build, --if-built → if-built, --NAME → NAME for each extra NAME the script accepts,
# -h/--help → SCRIPT's header comment as help (exit 0), anything else → an error.
# shellcheck disable=SC2034 # `mode` is the calling script's variable
parse_mode() {
  local script=$1 arg=$2 name
  shift 2
  mode=build
  case "$arg" in
    '') return ;;
    --if-built) mode='if-built'; return ;;
    -h | --help)
      print_header_help "$script"
      exit 0
      ;;
  esac
  for name in "$@"; do
    if [[ $arg == "--$name" ]]; then
      mode=$name
      return
    fi
  done
  die "unknown argument '$arg' (try --help)"
}
