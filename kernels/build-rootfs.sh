#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds a small ext4 root file system image for `tsvmm boot KERNEL ROOTFS`: the same busybox
# tree and /init as the initramfs (unpacked from it, so the two never drift apart), with the init
# script also at /sbin/init (the kernel's default on a disk root), made with `mkfs.ext4 -d` —
# no loop mount, no root needed beyond installing e2fsprogs/cpio when missing.
#
# usage: kernels/build-rootfs.sh             build if missing; last stdout line: the image path
#        kernels/build-rootfs.sh --if-built  print the path and exit 0 when built, else exit 1
#
# Artefact: $cache/rootfs/<key>/rootfs.ext4 (64 MiB, sparse), <key> from the initramfs it was
# made from and this script's hash. A Debian root file system instead: see the README
# (debootstrap, then mkfs.ext4 -d).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

readonly TAG=rootfs
readonly SIZE=64M
readonly BUILD_DEBS=(e2fsprogs cpio gzip)

parse_mode "${BASH_SOURCE[0]}" "${1:-}"

cache=$(tsvmm_cache_root)/rootfs

rootfs_key() {
  local initramfs=$1
  { printf '%s\n' "$initramfs"; sha256sum <"${BASH_SOURCE[0]}"; sha256sum <"$here/lib.sh"; } |
    sha256_stdin | cut -c1-16 | sed 's/^/busybox-ext4-/'
}

if [[ $mode == if-built ]]; then
  initramfs=$("$here/build-initramfs.sh" --if-built 2>/dev/null) || exit 1
  out=$cache/$(rootfs_key "$initramfs")
  [[ -f "$out/rootfs.ext4" ]] || exit 1
  printf '%s\n' "$out/rootfs.ext4"
  exit 0
fi

log "$TAG" "1/3 the busybox initramfs it is made from"
initramfs=$("$here/build-initramfs.sh" | tail -n 1)
ensure_debs "$TAG" "${BUILD_DEBS[@]}"
key=$(rootfs_key "$initramfs")
out=$cache/$key
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ -f "$out/rootfs.ext4" ]]; then
  log "$TAG" "up to date: $out (key $key)"
  printf '%s\n' "$out/rootfs.ext4"
  exit 0
fi

log "$TAG" "2/3 unpacking $initramfs"
rm -rf "$cache"/.tmp-*
tmp=$(mktemp -d "$cache/.tmp-$key.XXXXXX")
stage=$tmp/root
mkdir -p "$stage"
# dev/console is left out: on a disk root the kernel mounts devtmpfs on /dev itself.
(cd "$stage" && gzip -dc "$initramfs" | cpio -idm --quiet --nonmatching 'dev/console')
rm -f "$stage/sbin/init"
cp "$stage/init" "$stage/sbin/init"

log "$TAG" "3/3 mkfs.ext4 -d ($SIZE)"
mkfs.ext4 -q -F -L tsvmm-root -E root_owner=0:0 -d "$stage" "$tmp/rootfs.ext4" "$SIZE" >&2
rm -rf "$stage"
mv -T "$tmp" "$out"
log "$TAG" "done: $out/rootfs.ext4"
printf '%s\n' "$out/rootfs.ext4"
