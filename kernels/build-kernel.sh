#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds tsvmm's guest kernel: Debian's linux-source-6.1, `make tinyconfig`, plus the fragment
# kernels/tsvmm.config, everything built in. See kernels/README.md.
#
# usage: kernels/build-kernel.sh                build if missing; last stdout line: bzImage path
#        kernels/build-kernel.sh --if-built     print the bzImage path and exit 0 when already
#                                               built; exit 1 (nothing on stdout) otherwise.
#                                               Never installs or builds anything.
#        kernels/build-kernel.sh --config-only  only produce and verify the .config (seconds),
#                                               print its path; for working on the fragment.
#
# Artefacts: $cache/kernel/<key>/{bzImage,vmlinux,config,build-info}, where $cache is
# ${TSVMM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tsvmm} and <key> is derived from the
# linux-source-6.1 package version and the hashes of the fragment and of these scripts.
# Progress goes to stderr; the make output goes to $cache/kernel/build.log.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

readonly TAG=kernel
readonly SRC_PKG=linux-source-6.1
readonly SRC_TARBALL=/usr/src/linux-source-6.1.tar.xz
readonly FRAGMENT=$here/tsvmm.config
# Host packages the kernel build needs (Debian names).
readonly BUILD_DEBS=(build-essential bc bison flex libelf-dev libssl-dev xz-utils cpio)

parse_mode "${BASH_SOURCE[0]}" "${1:-}" config-only

cache=$(tsvmm_cache_root)/kernel
[[ -f "$FRAGMENT" ]] || die "config fragment $FRAGMENT is missing"

# kernel_key: <linux-source version>-<16 hex digits of sha256(version, fragment, scripts)>.
kernel_key() {
  local ver=$1
  {
    printf '%s=%s\n' "$SRC_PKG" "$ver"
    sha256sum <"$FRAGMENT"
    sha256sum <"${BASH_SOURCE[0]}"
    sha256sum <"$here/lib.sh"
  } | sha256_stdin | cut -c1-16 | sed "s/^/${ver}-/"
}

if [[ $mode == if-built ]]; then
  ver=$(deb_version "$SRC_PKG" 2>/dev/null || true)
  [[ -n "$ver" ]] || exit 1
  out=$cache/$(kernel_key "$ver")
  [[ -f "$out/bzImage" && -f "$out/vmlinux" ]] || exit 1
  printf '%s\n' "$out/bzImage"
  exit 0
fi

# --- 1. host packages -------------------------------------------------------------------------
log "$TAG" "1/6 checking build dependencies (${BUILD_DEBS[*]} $SRC_PKG)"
ensure_debs "$TAG" "${BUILD_DEBS[@]}" "$SRC_PKG"
ver=$(deb_version "$SRC_PKG")
[[ -f "$SRC_TARBALL" ]] ||
  die "$SRC_PKG $ver is installed but $SRC_TARBALL is missing; reinstall it: apt-get install --reinstall $SRC_PKG"
key=$(kernel_key "$ver")
out=$cache/$key

mkdir -p "$cache"
# One build at a time per cache (the build tree is shared between keys).
exec 9>"$cache/.lock"
if ! flock -n 9; then
  log "$TAG" "another kernel build holds $cache/.lock; waiting for it to finish"
  flock 9
fi

if [[ $mode == build && -f "$out/bzImage" && -f "$out/vmlinux" ]]; then
  log "$TAG" "up to date: $out (key $key)"
  printf '%s\n' "$out/bzImage"
  exit 0
fi

started=$SECONDS
buildlog=$cache/build.log
: >"$buildlog"
log "$TAG" "building kernel key $key; make output goes to $buildlog"

# --- 2. unpack the source (once per linux-source version) -------------------------------------
srcdir=$cache/src/$ver/linux-source-6.1
if [[ ! -f "$srcdir/.tsvmm-unpacked" ]]; then
  log "$TAG" "2/6 unpacking $SRC_TARBALL ($SRC_PKG $ver) into $cache/src/$ver (about a minute)"
  rm -rf "$cache"/src.tmp.*
  tmp=$(mktemp -d "$cache/src.tmp.XXXXXX")
  run_logged "$TAG" "$buildlog" tar -xJf "$SRC_TARBALL" -C "$tmp" ||
    die "could not unpack $SRC_TARBALL (see $buildlog); is the disk full?"
  [[ -f "$tmp/linux-source-6.1/Makefile" ]] ||
    die "$SRC_TARBALL does not contain linux-source-6.1/Makefile; reinstall $SRC_PKG"
  touch "$tmp/linux-source-6.1/.tsvmm-unpacked"
  # Source trees of other linux-source versions are of no further use.
  rm -rf "$cache/src"
  mkdir -p "$cache/src/$ver"
  mv -T "$tmp/linux-source-6.1" "$srcdir"
  rmdir "$tmp"
else
  log "$TAG" "2/6 using the unpacked source in $srcdir"
fi

# The build tree (make O=...) is shared by all keys of one source version, so that a changed
# fragment rebuilds only what it changes. Started afresh when the source version changes.
objdir=$cache/build
if [[ "$(cat "$objdir/.tsvmm-source" 2>/dev/null || true)" != "$ver" ]]; then
  rm -rf "$objdir"
  mkdir -p "$objdir"
  printf '%s\n' "$ver" >"$objdir/.tsvmm-source"
fi
kmake=(make -C "$srcdir" O="$objdir" ARCH=x86_64 KBUILD_BUILD_USER=tsvmm KBUILD_BUILD_HOST=tsvmm)

# --- 3. tinyconfig, 4. merge the fragment -------------------------------------------------------
log "$TAG" "3/6 make tinyconfig"
run_logged "$TAG" "$buildlog" "${kmake[@]}" tinyconfig || die "make tinyconfig failed (see $buildlog)"
log "$TAG" "4/6 merging $FRAGMENT (merge_config.sh -n: allnoconfig + tinyconfig + fragment)"
# -n: symbols that neither tinyconfig nor the fragment names are switched off rather than set to
# their defaults, so enabling NET does not also bring in IPv6, wireless, ... by default.
(
  cd "$srcdir"
  export ARCH=x86_64
  run_logged "$TAG" "$buildlog" \
    scripts/kconfig/merge_config.sh -n -O "$objdir" "$objdir/.config" "$FRAGMENT"
) || die "merging the fragment failed (see $buildlog)"

# --- 5. verify: every option of the fragment must be in the final .config as written ----------
# kconfig_deps SYMBOL: the depends/select lines of SYMBOL's Kconfig entry, for the error message.
kconfig_deps() {
  local sym=$1 f
  f=$(grep -rlx --include='Kconfig*' -e "config $sym" -e "menuconfig $sym" "$srcdir" 2>/dev/null | head -n 1)
  [[ -n "$f" ]] || {
    echo "      (no Kconfig entry named $sym in this source: misspelt, or not in 6.1)"
    return
  }
  awk -v s="$sym" -v f="${f#"$srcdir"/}" '
    $0 == "config " s || $0 == "menuconfig " s { on = 1; print "      " f ":"; next }
    on && /^(config|menuconfig|choice|endchoice|menu|endmenu|if|endif|source|comment)/ { exit }
    on && /^[ \t]+(depends on|select|bool|tristate)/ { sub(/^[ \t]+/, ""); print "        " $0 }
  ' "$f"
}

verify_config() {
  local config=$1 bad=0 line sym want got
  while IFS= read -r line; do
    if [[ $line =~ ^CONFIG_([A-Za-z0-9_]+)=(.*)$ ]]; then
      sym=${BASH_REMATCH[1]} want=${BASH_REMATCH[2]}
    elif [[ $line =~ ^#\ CONFIG_([A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
      sym=${BASH_REMATCH[1]} want=n
    else
      continue
    fi
    got=$(grep -m1 -E "^(# )?CONFIG_${sym}[= ]" "$config" || true)
    if [[ $got =~ ^CONFIG_${sym}=(.*)$ ]]; then
      got=${BASH_REMATCH[1]}
    elif [[ -n $got ]]; then
      got=n
    else
      got=absent
    fi
    # "Not set" is satisfied by both "# CONFIG_X is not set" and a symbol that is not visible.
    if [[ $want == n && ($got == n || $got == absent) ]] || [[ $got == "$want" ]]; then
      continue
    fi
    if ((bad == 0)); then
      printf 'error: these options of %s did not stick in the final .config\n' "$FRAGMENT" >&2
      printf '       (Kconfig drops an option without a word when a dependency is off):\n' >&2
    fi
    bad=$((bad + 1))
    if [[ $got == absent ]]; then
      printf '  CONFIG_%s: wanted %s, final .config: absent (not visible: a dependency is off)\n' "$sym" "$want" >&2
    else
      printf '  CONFIG_%s: wanted %s, final .config: %s\n' "$sym" "$want" "$got" >&2
    fi
    kconfig_deps "$sym" >&2
  done <"$FRAGMENT"
  if ((bad > 0)); then
    printf 'error: %d option(s) missing; add the missing dependencies to %s (final config: %s)\n' \
      "$bad" "$FRAGMENT" "$config" >&2
    return 1
  fi
}

log "$TAG" "5/6 verifying the final .config against the fragment"
verify_config "$objdir/.config" || exit 1
log "$TAG" "    all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set)' "$FRAGMENT") options of the fragment are in the final .config"

if [[ $mode == config-only ]]; then
  printf '%s\n' "$objdir/.config"
  exit 0
fi

# --- 6. compile -----------------------------------------------------------------------------------
jobs=$(nproc)
log "$TAG" "6/6 make -j$jobs bzImage (a few minutes; progress every ${TSVMM_PROGRESS_INTERVAL:-20} s)"
build_start=$SECONDS
run_logged "$TAG" "$buildlog" "${kmake[@]}" -j"$jobs" bzImage ||
  die "the kernel build failed (see $buildlog); fix the cause and run this again (it resumes)"
build_secs=$((SECONDS - build_start))

# Install the artefacts under a temporary name, then rename: an interrupted build never leaves
# a directory that looks complete.
rm -rf "$cache"/.tmp-*
tmp=$(mktemp -d "$cache/.tmp-$key.XXXXXX")
cp "$objdir/arch/x86/boot/bzImage" "$tmp/bzImage"
cp "$objdir/vmlinux" "$tmp/vmlinux"
cp "$objdir/.config" "$tmp/config"
cat >"$tmp/build-info" <<EOF
key=$key
source=$SRC_PKG $ver
fragment_sha256=$(sha256sum <"$FRAGMENT" | cut -d' ' -f1)
kernelrelease=$(cat "$objdir/include/config/kernel.release" 2>/dev/null || echo unknown)
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
make_seconds=$build_secs
total_seconds=$((SECONDS - started))
jobs=$jobs
EOF
chmod 0755 "$tmp"
rm -rf "$out"
mv -T "$tmp" "$out"
log "$TAG" "done in $((SECONDS - started)) s: $out (bzImage $(stat -c %s "$out/bzImage") bytes)"
printf '%s\n' "$out/bzImage"
