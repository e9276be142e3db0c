#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Smoke test of the guest kernel and initramfs without tsvmm and without KVM: boots them under
# QEMU's microvm machine with TCG (software emulation), the way tsvmm boots them (no ACPI, no
# PCI, 8250 console, reboot=k), and checks that /init prints its marker with the right nproc
# and that the guest's reboot ends QEMU.
#
# usage: kernels/qemu-smoke.sh [--smp N] [--memory MiB] [--vmlinux] [--timeout S]
#   --vmlinux  boot the uncompressed ELF vmlinux through its PVH entry point instead of bzImage
# Builds nothing: run kernels/build.sh first. Installs qemu-system-x86 when missing and root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

smp=2 mem=256 timeout=120 image=bzImage
while (($# > 0)); do
  case "$1" in
    --smp) smp=${2:?--smp needs a number}; shift 2 ;;
    --memory) mem=${2:?--memory needs MiB}; shift 2 ;;
    --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
    --vmlinux) image=vmlinux; shift ;;
    -h | --help) print_header_help "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done

paths=$("$here/build.sh" --print-paths-if-built) ||
  die "the guest kernel or initramfs is not built; run kernels/build.sh (npm run kernel) first"
kernel=$(sed -n 1p <<<"$paths")
initramfs=$(sed -n 2p <<<"$paths")
[[ $image == vmlinux ]] && kernel=$(dirname "$kernel")/vmlinux

command -v qemu-system-x86_64 >/dev/null 2>&1 || ensure_debs qemu qemu-system-x86

# -device i8042: QEMU's microvm machine has no keyboard controller, so without it the guest's
# reboot=k (0xFE to port 0x64) reaches nothing; Linux then falls back to jumping to the BIOS
# reset vector, which is no reset, and QEMU never exits. tsvmm, like Firecracker, has an i8042
# that turns 0xFE into the end of the VM, which is what -device i8042 + -no-reboot model here.
log qemu "booting $kernel with $smp vCPUs, $mem MiB (microvm, TCG)"
console=$(mktemp)
trap 'rm -f "$console"' EXIT
start=$SECONDS
rc=0
timeout "$timeout" qemu-system-x86_64 -M microvm,acpi=off -accel tcg -cpu max -m "$mem" -smp "$smp" \
  -nodefaults -no-user-config -nographic -serial stdio -no-reboot -device i8042 \
  -kernel "$kernel" -initrd "$initramfs" \
  -append 'console=ttyS0 reboot=k panic=1 pci=off' </dev/null >"$console" 2>&1 || rc=$?
secs=$((SECONDS - start))
marker=$(grep -a -m1 '^TSVMM-INIT-OK' "$console" | tr -d '\r' || true)
if [[ $rc -ne 0 || -z "$marker" || "$marker" != *" nproc=$smp "* ]]; then
  tail -n 30 "$console" >&2
  ((rc == 124)) && die "QEMU did not end within $timeout s (the guest's reboot did not end it?)"
  die "smoke test failed: QEMU exit $rc, marker '${marker:-<none>}' (wanted nproc=$smp)"
fi
log qemu "ok in $secs s (QEMU wall time): $marker"
printf '%s\n' "$marker"
