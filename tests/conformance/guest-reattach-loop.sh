#!/bin/sh
# guest-reattach-loop.sh HOST PORT BUSID [INTERVAL_S]
# Runs in the test guest (busybox sh, in the background): keeps one USB/IP
# device attached, as a hub port keeps a real key "plugged in". Whenever every
# vhci_hcd port is free (the device was unplugged: ferrokey's control API
# powered it off and closed the connection), it retries
#   usbip --tcp-port PORT attach -r HOST -b BUSID
# every INTERVAL_S seconds (default 0.2): ferrokey refuses imports while the
# key is powered off, so the attach succeeds right after power-on.
# Logs one line per attach (and per failure streak) to stdout; stops when
# killed.  Uses vhci_hcd's sysfs status files rather than `usbip port`, which
# parses usb.ids (seconds under TCG); see tools/vm/guest/vm-attach.
set -u
host=$1 port=$2 busid=$3 interval=${4:-0.2}

# True if some vhci port is in use (status column 3 is 004 = VDEV_ST_NULL when
# free; the header line has "sta" there).
port_in_use() {
  cat /sys/devices/platform/vhci_hcd.*/status* 2>/dev/null \
    | awk '$3 ~ /^[0-9]+$/ && $3 + 0 != 4 { used = 1 } END { exit !used }'
}

ts() { cut -d' ' -f1 /proc/uptime; }

failing=0
while :; do
  if ! port_in_use; then
    if usbip --tcp-port "$port" attach -r "$host" -b "$busid" >/dev/null 2>&1; then
      echo "$(ts) reattach: attached $busid from $host:$port"
      failing=0
    elif [ "$failing" = 0 ]; then
      echo "$(ts) reattach: attach refused (key powered off?); retrying every ${interval}s"
      failing=1
    fi
  fi
  sleep "$interval"
done
