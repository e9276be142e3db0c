#!/bin/busybox sh
# /init of the L1 guest of tsvmm's nested-KVM test bed (see test/bed/README.md).
# QEMU TCG boots it from the initramfs that test/bed/ensure.ts builds. It loads KVM (kvm_amd:
# TCG's `-cpu max` has SVM and NPT, no VMX) and 9p, mounts the host's root read-only, chroots
# into it and runs the job the host wrote (<tsvmm.job>/job.sh), then reports the job's exit
# status twice: on the console (a harness line the host parses, all 8 bits) and through
# QEMU's isa-debug-exit device at port 0xf4 (QEMU exits with (status << 1) | 1).
# Every line this script prints starts with "[tsvmm-bed]". If setup fails it powers off
# without a status, and the host reports "vm-died" with these lines.
/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "[tsvmm-bed] $*"; }
fail() { say "guest setup failed: $*"; poweroff -f; sleep 10; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

mount -t proc proc /proc && mount -t sysfs sys /sys && mount -t devtmpfs dev /dev ||
  fail "cannot mount /proc, /sys or /dev"

JOB='' NINEP=''
for w in $(cat /proc/cmdline); do
  case $w in
    tsvmm.job=*) JOB=${w#tsvmm.job=} ;;
    tsvmm.9p=*) NINEP=${w#tsvmm.9p=} ;;
  esac
done
[ -n "$JOB" ] || fail "no tsvmm.job= on the kernel command line"

# KVM loads only after L1 has refined its TSC frequency (issue 26). TCG's CPU has no constant
# TSC, so kvm.ko keeps the tsc_khz it loads with as every VM's default TSC rate (max_tsc_khz).
# The refinement (tsc_refine_calibration_work, about a second into boot: "tsc: Refined TSC
# clocksource calibration") moves tsc_khz by some 700 ppm here, past KVM's 250 ppm tolerance; for
# a VM created after that, Linux 6.1's kvm_set_tsc_khz wants TSC scaling, which this CPU lacks,
# and leaves the vCPU's TSC multiplier at 0 ("user requested TSC rate below hardware speed"): KVM
# then reads every nested guest's TSC as a constant and fires its TSC-deadline timers late by
# L1's uptime. The refinement ends by switching the clocksource to tsc: wait for that.
waited=0
while [ "$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)" != tsc ] && [ $waited -lt 300 ]; do
  sleep 0.1
  waited=$((waited + 1))
done
[ $waited -lt 300 ] ||
  say "warning: L1's clocksource is $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource), not tsc, after 30 s: KVM loads without a refined TSC rate"

# Module parameters come from the kernel command line as MODULE.PARAM=VALUE (what modprobe would
# do; busybox insmod takes them as arguments), e.g. kvm_amd.npt=0.
module_params() { for w in $(cat /proc/cmdline); do case $w in "$1".*) echo "${w#"$1".}" ;; esac; done; }
while read -r m; do
  # shellcheck disable=SC2046 # one word per parameter
  insmod "/lib/tsvmm/$m.ko" $(module_params "$m") || fail "insmod $m"
done </lib/tsvmm/order
[ -c /dev/kvm ] || fail "kvm_amd loaded but /dev/kvm is missing (does QEMU's -cpu have svm?)"

mount -t 9p -o "ro,trans=virtio,version=9p2000.L${NINEP:+,$NINEP}" hostroot /mnt ||
  fail "cannot mount the host root (9p mount tag hostroot)"
cp "/mnt$JOB/job.sh" /job.sh && cp "/mnt$JOB/binds" /binds ||
  fail "cannot read the job from the host ($JOB)"

# Writable scratch: a tmpfs over the host's /tmp. Directories under /tmp the job needs (its
# working directory, the node binary's) are bound back in from the host, read-only.
mkdir /hosttmp && mount --bind /mnt/tmp /hosttmp && mount -t tmpfs -o mode=1777 scratch /mnt/tmp ||
  fail "cannot mount the scratch tmpfs on /tmp"
while read -r p; do
  rel=${p#/tmp/}
  mkdir -p "/mnt/tmp/$rel" && mount --bind "/hosttmp/$rel" "/mnt/tmp/$rel" || fail "cannot bind $p"
done </binds
mount -t proc proc /mnt/proc && mount -t sysfs sys /mnt/sys && mount -t devtmpfs dev /mnt/dev ||
  fail "cannot mount /proc, /sys or /dev in the host root"
mkdir -p /mnt/dev/shm /mnt/dev/pts && mount -t tmpfs -o mode=1777 shm /mnt/dev/shm &&
  mount -t devpts devpts /mnt/dev/pts || fail "cannot mount /dev/shm or /dev/pts"
cp /job.sh /mnt/tmp/.tsvmm-job.sh || fail "cannot copy the job to the scratch tmpfs"

# Heartbeat: one byte to QEMU's isa-debugcon (port 0xe9, 233) every 2 s. The host's watchdog
# (test/bed/run.ts, watchdog.ts) takes a silence for a lost wake-up in QEMU's nested-SVM emulation
# (its timers stopped): it revives the machine with a key press, and kills it if that fails.
( while :; do printf . | dd of=/dev/port bs=1 seek=233 count=1 2>/dev/null; sleep 2; done ) &
HEARTBEAT=$!
echo "$HEARTBEAT" >/mnt/tmp/.tsvmm-heartbeat-pid # a job can stop it to check the watchdog

say "command starting (guest uptime $(uptime_s) s)"
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  chroot /mnt /bin/sh /tmp/.tsvmm-job.sh </dev/null
RC=$?
kill "$HEARTBEAT" 2>/dev/null
say "command exited with status $RC (guest uptime $(uptime_s) s)"
# The console tty buffers what the command wrote; QEMU exits the moment the port is written,
# so drain it first: busybox stty sets the (unchanged) mode with TCSADRAIN.
stty -F /dev/console onlcr 2>/dev/null

# isa-debug-exit: one byte to port 0xf4 (244); QEMU exits at once with (RC << 1) | 1.
printf "\\$(printf %o "$RC")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
say "isa-debug-exit did not stop QEMU; powering off"
poweroff -f
