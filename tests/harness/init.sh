#!/bin/sh
# PID 1 of the User-Mode Linux guest that runs the kernel test suite.
# The root filesystem is the live host's (hostfs): every directory the guest writes state into
# gets a tmpfs, except /tmp, which stays the host's so files the outer run put there are seen.
# Parameters arrive as environment variables from the kernel command line:
#   BONDCTL_RUN_DIR  host directory for job.json and the results (written back here)
#   BONDCTL_PYTHON   the outer run's interpreter;  BONDCTL_GUEST  harness/guest.py
#   BONDCTL_MODULES  the kernel modules every guest loads (bondctl.cli.uml.GUEST_MODULES)
# PID 1 must never exit (the kernel panics): every path ends in poweroff -f.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
run=$BONDCTL_RUN_DIR

mount -t proc proc /proc
echo >/proc/sys/kernel/hotplug  # no uevent helper, as on a node (bondctl/cli/uml.py says why)
mount -t sysfs sysfs /sys
mkdir -p /var/lib/cni /var/lib/containers
mount -t tmpfs -o mode=0755 tmpfs /run
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /run/netns /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /var/lib/cni
mount -t tmpfs tmpfs /var/lib/containers
ip link set lo up

modprobe -a -d /usr/lib/uml $(echo "$BONDCTL_MODULES" | tr , ' ') ||
    echo "init: a required kernel module failed to load" >&2
modprobe -a -q -d /usr/lib/uml team team_mode_activebackup team_mode_roundrobin \
    team_mode_loadbalance team_mode_broadcast ||
    echo "init: team modules unavailable" >&2

# Tells the outer run the guest's release and how long the boot took (seconds since start).
read -r release </proc/sys/kernel/osrelease
read -r uptime _ </proc/uptime
echo "$release $uptime" >"$run/booted"

"$BONDCTL_PYTHON" "$BONDCTL_GUEST" "$run/job.json" >"$run/output.log" 2>&1
echo $? >"$run/status"

# hostfs writes go through the guest's page cache: flush before the hard power-off.
sync
poweroff -f
