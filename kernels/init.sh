#!/bin/sh
# /init of tsvmm's busybox initramfs (built by kernels/build-initramfs.sh); runs as PID 1.
#
# 1. mounts /proc, /sys and devtmpfs on /dev (CONFIG_DEVTMPFS_MOUNT does not apply to an
#    initramfs: the kernel mounts devtmpfs itself only on a real root filesystem);
# 2. writes one byte (123) to the boot-timer I/O port 0x440 through /dev/port, the VMM's exact
#    "init reached" timestamp (as Firecracker's boot timer). It is written before anything is
#    printed, so the measured time does not include the console output below;
# 3. prints exactly one marker line on the console:
#        TSVMM-INIT-OK nproc=<online CPUs> uptime=<seconds since boot, from /proc/uptime>
# 4. powers the VM off with `poweroff -f` when the kernel can: it runs with ACPI and the tables
#    offer S5 (the kernel logs "ACPI: PM: (supports S0 S5)"), so acpi_power_off writes S5|SLP_EN
#    to the FADT's sleep control register, which tsvmm turns into the end of the VM (exit 0).
#    Without that (acpi=off, a kernel without ACPI, a VMM without _S5) a power-off would only
#    halt the CPUs, so it ends the VM with `reboot -f` instead: with reboot=k the kernel pulses
#    the reset line through the i8042 (0xFE to port 0x64), which tsvmm, like Firecracker, also
#    treats as the end of the VM.
# On the kernel command line, `tsvmm.init=reboot` makes it end with `reboot -f` always (to test
# the reset path), and `tsvmm.init=shell` starts an interactive shell on the console instead,
# ending the VM (as above) when that shell exits.

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid devtmpfs /dev 2>/dev/null # already mounted: fine

read -r uptime _ </proc/uptime

# Boot timer: byte 123 (octal 173) at offset 0x440 = 1088 of /dev/port.
if ! printf '\173' | dd of=/dev/port bs=1 seek=1088 count=1 conv=notrunc 2>/dev/null; then
  echo "tsvmm-init: could not write the boot-timer port 0x440 through /dev/port (kernel without CONFIG_DEVPORT?)"
fi

echo "TSVMM-INIT-OK nproc=$(nproc) uptime=$uptime"

mode=
read -r cmdline </proc/cmdline
for arg in $cmdline; do
  case "$arg" in
    tsvmm.init=*) mode=${arg#tsvmm.init=} ;;
  esac
done

if [ "$mode" = shell ]; then
  mkdir -p /tmp && mount -t tmpfs -o nosuid,nodev tmpfs /tmp
  hostname tsvmm
  echo "tsvmm-init: tsvmm.init=shell: interactive shell on the console; exit it (or run 'reboot -f') to end the VM"
  # setsid + cttyhack: a session of its own with the console as its controlling terminal, so
  # that Ctrl-C and job control work.
  setsid cttyhack sh -l
fi

if [ "$mode" != reboot ] && [ -d /sys/firmware/acpi ] && dmesg | grep -q 'ACPI: PM: (supports.* S5)'; then
  poweroff -f
  echo "tsvmm-init: poweroff -f failed; rebooting instead"
fi
reboot -f
# Not reached unless reboot failed; PID 1 must not exit (the kernel would panic, which with
# panic=1 also resets the VM, but less cleanly).
echo "tsvmm-init: reboot -f failed"
while :; do sleep 3600; done
