#!/usr/bin/env bash
# Build a busybox OCI bundle: DIR/rootfs from busybox-static with its applet links,
# DIR/config.json from `pyruntime spec`, made non-interactive (terminal off, `sh`).
# Usage: bundles/busybox.sh DIR [cmd args...]
set -euo pipefail
dir=${1:?usage: busybox.sh DIR [cmd...]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
runtime=${PYRUNTIME:-$here/.venv/bin/pyruntime}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "busybox.sh: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }

rootfs=$dir/rootfs
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home,var,run}
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
"$busybox" --list-full | while read -r applet; do
    [ "$applet" = "bin/busybox" ] && continue
    mkdir -p "$rootfs/$(dirname "$applet")"
    ln -sf /bin/busybox "$rootfs/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
echo "busybox" > "$rootfs/etc/hostname"

rm -f "$dir/config.json"
"$runtime" spec --bundle "$dir"
args='["sh"]'
if [ $# -gt 0 ]; then
    # each argument whole (newlines included), as a JSON string
    args=$(for a in "$@"; do printf '%s' "$a" | jq -Rs .; done | jq -sc .)
fi
jq --argjson args "$args" '.process.terminal = false | .process.args = $args' \
    "$dir/config.json" > "$dir/config.json.tmp"
mv "$dir/config.json.tmp" "$dir/config.json"
