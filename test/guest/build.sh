#!/usr/bin/env bash
# Builds the programs that run inside a benchmark guest, and the small read-only ext4 "tools"
# disk that carries them there (the kernels/ initramfs stays as it is):
#
#   blkbench     test/guest/blkbench.c, gcc -O2 -static (the initramfs has no libc)
#   vsockt       test/guest/vsockt.c, the same way (AF_VSOCK streams for the vsock tests)
#   tools.ext4   an 8 MiB ext4 image, made with mkfs.ext4 -d (no loop mount, no root needed),
#                holding /blkbench and /vsockt
#
# Cached in ${XDG_CACHE_HOME:-~/.cache}/tsvmm/guest/<hash>/, the hash covering this script, the
# sources and the compiler's version; nothing built lands in the repository. Prints the three
# paths, one a line (blkbench, vsockt, then tools.ext4: the image stays last). vsockt also runs
# on the host, as the host-side peer of bench/vsock.ts. Needs gcc, libc6-dev (for libc.a) and e2fsprogs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PATH="$PATH:/usr/sbin:/sbin" # mkfs.ext4 lives in sbin, which a non-login PATH may lack

for tool in gcc sha256sum mkfs.ext4; do
  command -v "$tool" >/dev/null || { echo "test/guest/build.sh: $tool not found (apt-get install gcc libc6-dev e2fsprogs)" >&2; exit 1; }
done

key=$( { cat "$here/build.sh" "$here/blkbench.c" "$here/vsockt.c"; gcc --version | head -1; } | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tsvmm/guest/$key"

if [ ! -f "$cache/tools.ext4" ]; then
  mkdir -p "$(dirname "$cache")"
  tmp=$(mktemp -d "$(dirname "$cache")/.build-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  mkdir "$tmp/root"
  gcc -O2 -static -Wall -Wextra -Werror -pthread -o "$tmp/root/blkbench" "$here/blkbench.c"
  gcc -O2 -static -Wall -Wextra -Werror -pthread -o "$tmp/root/vsockt" "$here/vsockt.c"
  # -E root_owner: files owned by root in the guest whoever builds; no journal: read-only disk.
  truncate -s 8M "$tmp/tools.ext4" # exists already, so mkfs does not announce creating it
  mkfs.ext4 -q -F -O ^has_journal -E root_owner=0:0 -L tsvmm-tools -d "$tmp/root" "$tmp/tools.ext4"
  cp "$tmp/root/blkbench" "$tmp/blkbench"
  cp "$tmp/root/vsockt" "$tmp/vsockt"
  rm -rf "$tmp/root"
  chmod 755 "$tmp" # mktemp made it private; the cache is readable like the rest of ~/.cache/tsvmm
  # Built aside and renamed into place, so that an interrupted build never looks finished.
  rm -rf "$cache"
  mv "$tmp" "$cache"
  trap - EXIT
fi
echo "$cache/blkbench"
echo "$cache/vsockt"
echo "$cache/tools.ext4"
