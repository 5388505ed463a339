#!/usr/bin/env bash
# `make demo`: the seeds' demonstration with dockee-shim on the embedded busybox image, in a
# private store and runtime state dir that are removed at the end. Under a minute.
# DEMO_RUNTIME=runc runs the same with runc.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/dockee-demo.XXXXXX)
runtime=${DEMO_RUNTIME:-pyruntime}
dk() { "$here/.venv/bin/dockee-shim" --root "$work/store" --runtime-root "$work/rt" --runtime "$runtime" "$@"; }
cleanup() {
    for id in $(dk ps -aq 2>/dev/null); do dk rm -f "$id" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say "dockee-shim run --rm busybox sh -c '...'   (busybox is built from the host's busybox-static on first use)"
dk run --rm --net none --hostname demo busybox sh -c '
echo "pid 1:    $(cat /proc/1/comm) (I am pid $$)"
echo "hostname: $(hostname)   (the host is '"$(hostname)"')"
echo "rootfs:   $(ls / | tr "\n" " ")"
echo "procs:    $(ps -o pid,comm | tail -n +2 | tr -s " " | tr "\n" ";")"'

say "dockee-shim run -m 16m busybox <memory hog>"
set +e
dk run --name hog --net none -m 16m busybox sh -c 'x=$(head -c 200000000 /dev/zero | tr "\0" a); echo survived'
echo "exit code: $?"
set -e
dk inspect -f 'OOMKilled={{.State.OOMKilled}} ExitCode={{.State.ExitCode}}' hog
dk rm hog >/dev/null

say "dockee-shim run -d --cpus 0.5 busybox <busy loop>; two samples of its cgroup's CPU time"
id=$(dk run -d --net none --cpus 0.5 busybox sh -c 'while :; do :; done')
pid=$(dk inspect -f '{{.State.Pid}}' "$id")
usage=/sys/fs/cgroup/cpuacct$(awk -F: '$2 ~ /cpuacct/ {print $3}' "/proc/$pid/cgroup")/cpuacct.usage
a=$(cat "$usage"); sleep 2; b=$(cat "$usage")
echo "busy loop used $(( (b - a) / 20000000 ))% of one CPU over 2 s"
dk stats --no-stream "$id"
dk rm -f "$id" >/dev/null

say "dockee-shim run -d --name web busybox <a logger>; ps; logs; exec; stop; rm"
dk run -d --name web --net none busybox sh -c 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done'
sleep 1
dk ps
say "dockee-shim logs --tail 3 web"
dk logs --tail 3 web
say "dockee-shim exec web ps"
dk exec web ps
say "dockee-shim stop -t 1 web; dockee-shim ps -a"
dk stop -t 1 web
dk ps -a
say "dockee-shim rm web"
dk rm web

say "dockee-shim commit: a change in a container becomes an image"
dk run --name changer --net none busybox sh -c 'echo "made in a container" > /etc/motd'
dk commit changer demo/motd:v1
dk run --rm --net none demo/motd:v1 cat /etc/motd
dk rm changer >/dev/null
dk images
echo
echo "done: $(dk ps -aq | wc -l) containers left"
