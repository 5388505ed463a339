#!/usr/bin/env bash
# Build a Debian rootfs with debootstrap (minbase) and write it as a `docker export`-style
# tarball: one flat layer, entries relative to / without a leading "./", numeric owners.
# The mirror is the host's own (first enabled Debian URI of its apt sources), read at run
# time so that no host name is written here; MIRROR=... overrides it.
# Usage: bundles/debian.sh OUT.tar [SUITE]      (SUITE defaults to bullseye)
set -euo pipefail
out=${1:?usage: debian.sh OUT.tar [SUITE]}
suite=${2:-bullseye}
[ "$(id -u)" = 0 ] || { echo "debian.sh: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian.sh: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }

# The first URI ending in /debian from the host's enabled sources (one-line .list files and
# deb822 .sources files); security and third-party repositories do not carry the suite.
host_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/ && $i ~ /:\/\//) { print $i; break } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
}
mirror=${MIRROR:-$(host_mirror | sed 's:/*$::' | grep -E '/debian$' | head -n1 || true)}
[ -n "$mirror" ] || { echo "debian.sh: no Debian mirror in the host's apt sources; set MIRROR=" >&2; exit 1; }

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
keyopt=()
[ -f "$keyring" ] && keyopt=(--keyring="$keyring")

out=$(realpath -m "$out")
mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$(dirname "$out")/.debian-build.XXXXXX")
cleanup() {
    # debootstrap may leave proc/sys mounted when it fails halfway
    for m in proc sys dev/pts; do umount -l "$work/rootfs/$m" 2>/dev/null || true; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

debootstrap --variant=minbase "${keyopt[@]}" "$suite" "$work/rootfs" "$mirror" >"$work/log" 2>&1 || {
    tail -n 20 "$work/log" >&2
    echo "debian.sh: debootstrap $suite from $mirror failed" >&2
    exit 1
}
rootfs=$work/rootfs
# What docker export leaves out or a container brings itself: package caches, apt lists, logs.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/bootstrap.log
rm -rf "$rootfs"/proc/* "$rootfs"/sys/* 2>/dev/null || true
# Top-level names without "./", as docker export writes them (none has a space).
tar -C "$rootfs" --numeric-owner --xattrs --sort=name -cf "$work/out.tar" $(ls -A "$rootfs")
mv "$work/out.tar" "$out"
