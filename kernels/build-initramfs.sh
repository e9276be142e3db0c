#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds tsvmm's busybox initramfs: Debian's busybox-static plus kernels/init.sh as /init, a
# gzip'd newc cpio. See kernels/README.md.
#
# usage: kernels/build-initramfs.sh             build if missing; last stdout line: its path
#        kernels/build-initramfs.sh --if-built  print the path and exit 0 when already built;
#                                               exit 1 (nothing on stdout) otherwise.
#                                               Never installs or builds anything.
#
# Artefact: $cache/initramfs/<key>/initramfs.cpio.gz, where $cache is
# ${TSVMM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tsvmm} and <key> is derived from the
# busybox-static version and the hashes of init.sh and of these scripts. No root needed
# (except to apt-get install busybox-static/cpio when they are missing).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

readonly TAG=initramfs
readonly BUSYBOX_PKG=busybox-static
readonly BUSYBOX=/bin/busybox
readonly INIT=$here/init.sh
readonly BUILD_DEBS=(cpio gzip)

parse_mode "${BASH_SOURCE[0]}" "${1:-}"

cache=$(tsvmm_cache_root)/initramfs
[[ -f "$INIT" ]] || die "$INIT is missing"

# initramfs_key: busybox-<version>-<16 hex digits of sha256(version, init.sh, scripts)>.
initramfs_key() {
  local ver=$1
  {
    printf '%s=%s\n' "$BUSYBOX_PKG" "$ver"
    sha256sum <"$INIT"
    sha256sum <"${BASH_SOURCE[0]}"
    sha256sum <"$here/lib.sh"
  } | sha256_stdin | cut -c1-16 | sed "s/^/busybox-${ver#*:}-/"
}

if [[ $mode == if-built ]]; then
  ver=$(deb_version "$BUSYBOX_PKG" 2>/dev/null || true)
  [[ -n "$ver" ]] || exit 1
  out=$cache/$(initramfs_key "$ver")
  [[ -f "$out/initramfs.cpio.gz" ]] || exit 1
  printf '%s\n' "$out/initramfs.cpio.gz"
  exit 0
fi

log "$TAG" "1/3 checking dependencies ($BUSYBOX_PKG ${BUILD_DEBS[*]})"
ensure_debs "$TAG" "$BUSYBOX_PKG" "${BUILD_DEBS[@]}"
ver=$(deb_version "$BUSYBOX_PKG")
[[ -x "$BUSYBOX" ]] ||
  die "$BUSYBOX_PKG $ver is installed but $BUSYBOX is missing; reinstall it: apt-get install --reinstall $BUSYBOX_PKG"
# A dynamically linked busybox (Debian's `busybox` package) would not run in the initramfs.
if LC_ALL=C readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'Requesting program interpreter'; then
  die "$BUSYBOX is dynamically linked (Debian's 'busybox' package); install 'busybox-static' instead"
fi
key=$(initramfs_key "$ver")
out=$cache/$key

mkdir -p "$cache"
exec 9>"$cache/.lock"
if ! flock -n 9; then
  log "$TAG" "another initramfs build holds $cache/.lock; waiting for it to finish"
  flock 9
fi
if [[ -f "$out/initramfs.cpio.gz" ]]; then
  log "$TAG" "up to date: $out (key $key)"
  printf '%s\n' "$out/initramfs.cpio.gz"
  exit 0
fi

# newc_node NAME MODE MAJOR MINOR: one newc cpio entry for a character device node, written
# with printf so that no root (mknod) is needed. 13 fields of 8 hex digits after the magic:
# ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check.
newc_entry() {
  local name=$1 mode=$2 rmaj=$3 rmin=$4 ino=$5
  local namesize=$((${#name} + 1))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\0' \
    "$ino" "$mode" 0 0 1 0 0 0 0 "$rmaj" "$rmin" "$namesize" 0 "$name"
  # The header (110 bytes) plus the name is padded to a multiple of 4.
  local pad=$(((4 - (110 + namesize) % 4) % 4))
  head -c "$pad" /dev/zero
}

log "$TAG" "2/3 staging busybox $ver ($BUSYBOX) and $INIT as /init"
rm -rf "$cache"/.tmp-*
tmp=$(mktemp -d "$cache/.tmp-$key.XXXXXX")
root=$tmp/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,etc}
cp "$BUSYBOX" "$root/bin/busybox"
# One symlink per applet, at the path busybox itself lists (bin/sh, sbin/reboot, usr/bin/nproc ...).
applets=0
while IFS= read -r applet; do
  [[ -n "$applet" && "$applet" != bin/busybox && ! -e "$root/$applet" ]] || continue
  mkdir -p "$root/$(dirname "$applet")"
  ln -s /bin/busybox "$root/$applet"
  applets=$((applets + 1))
done < <("$BUSYBOX" --list-full)
for needed in bin/sh bin/mount bin/dd sbin/reboot usr/bin/nproc bin/cttyhack usr/bin/setsid; do
  [[ -L "$root/$needed" || -e "$root/$needed" ]] ||
    die "$BUSYBOX has no '$(basename "$needed")' applet, which /init needs"
done
cp "$INIT" "$root/init"
chmod 0755 "$root/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"

log "$TAG" "3/3 writing the gzip'd newc cpio ($applets applet links)"
# Reproducible: sorted names, owner root, mtimes fixed, no gzip name/timestamp.
find "$root" -exec touch -h -d @0 {} +
(
  cd "$root"
  find . -mindepth 1 -print | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible
  # /dev/console (char 5:1) so that the kernel can open init's console before /init runs;
  # a second archive in the same stream, which the kernel unpacks after the first.
  {
    newc_entry dev/console $((0020600)) 5 1 1
    newc_entry TRAILER!!! 0 0 0 0
  }
) | gzip -n -9 >"$tmp/initramfs.cpio.gz"
rm -rf "$root"
chmod 0755 "$tmp"
mv -T "$tmp" "$out"
log "$TAG" "done: $out/initramfs.cpio.gz ($(stat -c %s "$out/initramfs.cpio.gz") bytes)"
printf '%s\n' "$out/initramfs.cpio.gz"
