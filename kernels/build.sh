#!/usr/bin/env bash
# Builds what is missing of tsvmm's guest kernel and busybox initramfs (what `npm run kernel`
# runs), then prints, as the LAST TWO LINES on stdout, the absolute paths of the bzImage and of
# the initramfs. Progress goes to stderr. The uncompressed ELF vmlinux lies next to the bzImage.
#
# usage: kernels/build.sh                        build what is missing, print the two paths
#        kernels/build.sh --print-paths-if-built  print the two paths and exit 0 when both are
#                                                  built; exit 1 with nothing on stdout
#                                                  otherwise. Never builds or installs anything.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case "${1:-}" in
  '')
    kernel=$("$here/build-kernel.sh" | tail -n 1)
    initramfs=$("$here/build-initramfs.sh" | tail -n 1)
    [[ -f "$kernel" && -f "$initramfs" ]] || {
      printf 'error: the build scripts did not report their artefacts (got "%s" and "%s")\n' \
        "$kernel" "$initramfs" >&2
      exit 1
    }
    printf '%s\n%s\n' "$kernel" "$initramfs"
    ;;
  --print-paths-if-built)
    kernel=$("$here/build-kernel.sh" --if-built) || exit 1
    initramfs=$("$here/build-initramfs.sh" --if-built) || exit 1
    printf '%s\n%s\n' "$kernel" "$initramfs"
    ;;
  -h | --help)
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    ;;
  *)
    printf "error: unknown argument '%s' (try --help)\n" "$1" >&2
    exit 2
    ;;
esac
