#!/usr/bin/env bash
# `make demo`: run a container from the embedded busybox bundle and show what it sees.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rt="$here/.venv/bin/pyruntime"
work=$(mktemp -d /tmp/pyruntime-demo.XXXXXX)
root="$work/state"
id="demo-$$"
cleanup() { "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

echo "== building a busybox bundle in $work/bundle"
bash "$here/bundles/busybox.sh" "$work/bundle" sh -c '
echo "inside:   pid $$ ($(cat /proc/1/comm)), hostname $(hostname), user $(id -u):$(id -g)"
echo "rootfs:   $(ls / | tr "\n" " ")"
echo "procs:    $(ps -o pid,comm | tail -n +2 | tr -s " " | tr "\n" ";")"
echo "caps:     $(grep CapEff /proc/self/status)"
echo "memory:   limit $(( $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo 0) / 1048576 )) MiB"
echo "pids:     limit $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || echo ?)"
' >/dev/null
cfg="$work/bundle/config.json"
jq --arg cg "pyruntime-demo-$$" '.linux.cgroupsPath = $cg | .hostname = "demo"
  | .linux.resources.memory = {"limit": 67108864} | .linux.resources.pids = {"limit": 64}' \
  "$cfg" > "$cfg.tmp" && mv "$cfg.tmp" "$cfg"
echo "outside:  host $(hostname), pid $$"
echo "== pyruntime run $id"
"$rt" --root "$root" run --bundle "$work/bundle" "$id"
echo "== lifecycle: create, state, start, kill, delete"
jq '.process.args = ["sleep", "30"]' "$cfg" > "$cfg.tmp" && mv "$cfg.tmp" "$cfg"
"$rt" --root "$root" create --bundle "$work/bundle" "$id"
"$rt" --root "$root" list
"$rt" --root "$root" start "$id"
"$rt" --root "$root" state "$id" | jq -c '{id, status, pid}'
"$rt" --root "$root" kill "$id" KILL
sleep 0.2
"$rt" --root "$root" state "$id" | jq -c '{id, status, pid}'
"$rt" --root "$root" delete "$id"
echo "== done"
