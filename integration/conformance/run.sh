#!/usr/bin/env bash
# Conformance comparison: run runc's own bats integration tests (taken from
# Debian's runc source package) against pyruntime and against runc, and print
# pass/fail/skip counts per .bats file side by side.
#
# Usage (as root):
#   bash integration/conformance/run.sh
#
# Environment:
#   CONFORMANCE_FILES="create start"  limit to these .bats files (no suffix)
#   RUNC_PYRUNTIME=/path              pyruntime binary (default: this checkout's .venv/bin/pyruntime)
#   RUNC_REFERENCE=/path              reference runc (default: runc on PATH)
#   CONFORMANCE_RUNTIMES="runc"       run only some columns (pyruntime, runc)
#   CONFORMANCE_TIMEOUT=300           per-file timeout in seconds
#   CONFORMANCE_CACHE=DIR             source/image cache (default integration/conformance/.cache)
#   CONFORMANCE_RESULTS=DIR           results base dir (default integration/conformance/results)
#
# Results: $CONFORMANCE_RESULTS/<timestamp>/<runtime>/<file>.tap (raw TAP),
# summary.txt, differences.txt; $CONFORMANCE_RESULTS/latest points at the last run.
# Exit status: 0 when pyruntime passed every test runc passed (but for the short
# allow-list in tap_summary.py), 4 when it did not (regressions.txt lists them),
# 2 or 3 when the harness itself broke.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${CONFORMANCE_CACHE:-$HERE/.cache}
RESULTS_BASE=${CONFORMANCE_RESULTS:-$HERE/results}
TIMEOUT=${CONFORMANCE_TIMEOUT:-300}
PYRUNTIME_BIN=${RUNC_PYRUNTIME:-$REPO/.venv/bin/pyruntime}
REFERENCE_BIN=${RUNC_REFERENCE:-$(command -v runc || true)}
RUNTIMES=${CONFORMANCE_RUNTIMES:-pyruntime runc}
DEFAULT_FILES="create start delete kill state list exec run ps pause hooks mounts
cwd umask dev mask root spec start_detached start_hello help version events
update cgroups userns tty no_pivot"
read -r -a FILES <<<"$(echo ${CONFORMANCE_FILES:-$DEFAULT_FILES})"

# A real interpreter, not a pyenv shim (too slow for recvtty, which tests
# start in the background and connect to immediately).
if [ -x "$REPO/.venv/bin/python" ]; then
	PY="$REPO/.venv/bin/python"
else
	PY=/usr/bin/python3
fi

log() { echo "conformance: $*" >&2; }
die() {
	log "ERROR: $*"
	exit 2
}

# ---------------------------------------------------------------- packages --

ensure_packages() {
	# command -> Debian package providing it
	local -A want=(
		[bats]=bats [jq]=jq [gawk]=gawk [go]=golang-go [gcc]=gcc
		[dpkg-source]=dpkg-dev [nsenter]=util-linux
		[lsblk]=util-linux [flock]=util-linux [xz]=xz-utils
	)
	local cmd missing=()
	for cmd in "${!want[@]}"; do
		command -v "$cmd" >/dev/null || missing+=("${want[$cmd]}")
	done
	# The test image is built from a statically linked /bin/busybox.
	if [ ! -x /bin/busybox ] || ! is_static /bin/busybox; then
		missing+=(busybox-static)
	fi
	[ ${#missing[@]} -eq 0 ] && return
	read -r -a missing <<<"$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
	log "installing missing packages: ${missing[*]}"
	apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		die "apt-get install ${missing[*]} failed"
}

is_static() {
	local out
	out=$(LC_ALL=C ldd "$1" 2>&1 || true)
	[[ "$out" == *"not a dynamic executable"* || "$out" == *"statically linked"* ]]
}

# ------------------------------------------------------------ runc source --

# Sets SRC to the extracted runc source tree, fetching it with apt-get source
# (deb-src entries derived from the machine's own apt sources, kept in a
# private sources list so the system apt configuration is not modified).
fetch_source() {
	local srcdir="$CACHE/src" aptdir="$CACHE/apt" tree
	tree=$(find_tree "$srcdir")
	if [ -n "$tree" ]; then
		SRC=$tree
		return
	fi
	log "fetching runc source package"
	rm -rf "$aptdir"
	mkdir -p "$srcdir" "$aptdir/parts" "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
	"$PY" "$HERE/derive_deb_src.py" "$aptdir/sources.list" "$aptdir/parts" ||
		die "could not derive deb-src entries from /etc/apt"
	local aptopts=(
		-o "Dir::Etc::SourceList=$aptdir/sources.list"
		-o "Dir::Etc::SourceParts=$aptdir/parts"
		-o "Dir::State::Lists=$aptdir/lists"
		-o "Dir::Cache=$aptdir/cache"
		-o "APT::Sandbox::User=root"
	)
	apt-get "${aptopts[@]}" update -qq >&2 || die "apt-get update (deb-src) failed"
	(cd "$srcdir" && apt-get "${aptopts[@]}" source -qq runc >&2) || die "apt-get source runc failed"
	tree=$(find_tree "$srcdir")
	[ -n "$tree" ] || die "runc source extracted, but no tests/integration/helpers.bash found in $srcdir"
	SRC=$tree
}

find_tree() {
	local d
	for d in "$1"/runc-*/; do
		if [ -f "$d/tests/integration/helpers.bash" ]; then
			echo "${d%/}"
			return
		fi
	done
}

# ---------------------------------------------------- helpers and images --

install_helpers() {
	# contrib/cmd/recvtty/recvtty: our Python version, with a direct shebang
	# (no wrapper shell) so the pid written to --pid-file is the listener's.
	local dest="$SRC/contrib/cmd/recvtty/recvtty"
	mkdir -p "$(dirname "$dest")"
	{
		echo "#!$PY -SE"
		cat "$HERE/recvtty.py"
	} >"$dest.tmp"
	chmod 755 "$dest.tmp"
	mv -f "$dest.tmp" "$dest"
	RECVTTY_PATH=$dest
}

# get-images.sh downloads nothing when testdata/{busybox,debian}-$arch.tar.xz
# exist; build both from the local static busybox. The "debian" one also gets
# the host's static ldconfig and lib dirs (hooks.bats runs ldconfig in it).
# Bump IMAGE_RECIPE when the recipe changes so cached tarballs are rebuilt.
IMAGE_RECIPE=2

install_images() {
	local testdata="$SRC/tests/integration/testdata" arch
	arch=$(go env GOARCH) || die "go env GOARCH failed"
	local stamp="$testdata/.pyruntime-image-recipe"
	if [ -s "$testdata/busybox-$arch.tar.xz" ] && [ -s "$testdata/debian-$arch.tar.xz" ] &&
		[ "$(cat "$stamp" 2>/dev/null)" = "$IMAGE_RECIPE" ]; then
		return
	fi
	log "building test rootfs tarballs from /bin/busybox"
	build_images "$testdata/busybox-$arch.tar.xz" "$testdata/debian-$arch.tar.xz"
	echo "$IMAGE_RECIPE" >"$stamp"
}

build_images() {
	local busybox_tar=$1 debian_tar=$2 tmp rootfs applet name link
	tmp=$(mktemp -d)
	rootfs="$tmp/rootfs"
	# No proc/ or sys/: mask.bats replaces them with symlinks (ln -s), as in
	# the docker busybox image the tests are written against.
	mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,dev,tmp,root,home,var/spool/mail,var/www}
	chmod 1777 "$rootfs/tmp"
	install -m 755 /bin/busybox "$rootfs/bin/busybox"
	# Links where busybox wants them, plus every applet in /bin (as in the
	# docker busybox image). Never replace bin/busybox itself.
	while read -r applet; do
		[ -n "$applet" ] || continue
		name=$(basename "$applet")
		for link in "$applet" "bin/$name"; do
			if [ "$link" = bin/busybox ] || [ -e "$rootfs/$link" ] || [ -L "$rootfs/$link" ]; then
				continue
			fi
			mkdir -p "$rootfs/$(dirname "$link")"
			ln -s /bin/busybox "$rootfs/$link"
		done
	done < <(/bin/busybox --list-full)
	cat >"$rootfs/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		daemon:x:1:1:daemon:/usr/sbin:/bin/false
		bin:x:2:2:bin:/bin:/bin/false
		sys:x:3:3:sys:/dev:/bin/false
		sync:x:4:100:sync:/bin:/bin/sync
		mail:x:8:8:mail:/var/spool/mail:/bin/false
		www-data:x:33:33:www-data:/var/www:/bin/false
		operator:x:37:37:Operator:/var:/bin/false
		nobody:x:65534:65534:nobody:/home:/bin/false
	EOF
	cat >"$rootfs/etc/group" <<-'EOF'
		root:x:0:
		daemon:x:1:
		bin:x:2:
		sys:x:3:
		adm:x:4:
		tty:x:5:
		disk:x:6:
		lp:x:7:
		mail:x:8:
		kmem:x:9:
		wheel:x:10:root
		cdrom:x:11:
		dialout:x:18:
		floppy:x:19:
		video:x:28:
		audio:x:29:
		tape:x:32:
		www-data:x:33:
		operator:x:37:
		utmp:x:43:
		plugdev:x:46:
		staff:x:50:
		lock:x:54:
		netdev:x:82:
		users:x:100:
		nogroup:x:65534:
	EOF
	echo "busybox" >"$rootfs/etc/hostname"
	make_tar "$rootfs" "$busybox_tar"

	if is_static /sbin/ldconfig; then
		rm -f "$rootfs/sbin/ldconfig"
		install -m 755 /sbin/ldconfig "$rootfs/sbin/ldconfig"
	else
		log "WARNING: /sbin/ldconfig is not static; hooks.bats will fail"
	fi
	mkdir -p "$rootfs"/{lib,usr/lib,etc/ld.so.conf.d}
	echo 'include /etc/ld.so.conf.d/*.conf' >"$rootfs/etc/ld.so.conf"
	make_tar "$rootfs" "$debian_tar"
	rm -rf "$tmp"
}

make_tar() {
	tar --numeric-owner --owner=0 --group=0 -C "$1" -cJf "$2.tmp" .
	mv -f "$2.tmp" "$2"
}

# ---------------------------------------------------------------- cleanup --

# Kill processes we started that outlived their test: our recvtty copies and
# anything whose root or working directory lies inside the given temp dir
# (containers, background "runc events" and the like).
kill_leftover_processes() {
	local tmp=$1 p pid cmd root cwd
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ "$pid" = $$ ] && continue
		cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
		root=$(readlink "$p/root" 2>/dev/null) || root=
		cwd=$(readlink "$p/cwd" 2>/dev/null) || cwd=
		if [[ "$cmd" == *"$RECVTTY_PATH "* || "$root" == "$tmp"/* || "$cwd" == "$tmp"/* ]]; then
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
}

cleanup_tmp() {
	local bin=$1 tmp=$2 root ct mp
	[ -d "$tmp" ] || return 0
	# Containers left in any state root (helpers.bash: $ROOT/state) under the temp dir.
	while IFS= read -r root; do
		for ct in $("$bin" --root "$root" list -q 2>/dev/null); do
			log "removing leftover container $ct ($root)"
			"$bin" --root "$root" delete -f "$ct" >/dev/null 2>&1 || true
		done
	done < <(find "$tmp" -maxdepth 5 -type d -name state 2>/dev/null)
	kill_leftover_processes "$tmp"
	# Mounts left under the temp dir, deepest first.
	while IFS= read -r mp; do
		log "unmounting leftover mount $mp"
		umount -l "$mp" 2>/dev/null || true
	done < <(awk '{print $5}' /proc/self/mountinfo | while read -r m; do printf '%b\n' "$m"; done |
		grep -F "$tmp/" | sort -r)
	rm -rf "$tmp" 2>/dev/null || log "WARNING: could not remove $tmp"
}

# Containers created in a runtime's default root during the run: only those whose
# bundle lies in one of our temp dirs (/tmp/pyrt-conf.*), never someone else's.
cleanup_default_root() {
	local bin=$1 before=$2 ct bundle
	for ct in $("$bin" list -q 2>/dev/null); do
		grep -qxF "$ct" <<<"$before" && continue
		bundle=$("$bin" state "$ct" 2>/dev/null | jq -r '.bundle // ""' 2>/dev/null) || bundle=
		[[ "$bundle" == /tmp/pyrt-conf.* ]] || continue
		log "removing leftover container $ct (default root of $bin)"
		"$bin" delete -f "$ct" >/dev/null 2>&1 || true
	done
}

cleanup_cgroups() {
	local d
	for d in /sys/fs/cgroup/runc-cgroups-integration-test /sys/fs/cgroup/*/runc-cgroups-integration-test; do
		[ -d "$d" ] || continue
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		[ -d "$d" ] && log "WARNING: leftover cgroup $d (still has processes?)"
	done
	return 0
}

# -------------------------------------------------------------------- run --

run_file() {
	local rt=$1 bin=$2 file=$3 outdir=$4 tmp rc=0 start
	tmp=$(mktemp -d /tmp/pyrt-conf.XXXXXX) # short: console socket paths must fit in sun_path
	chmod 755 "$tmp"
	start=$SECONDS
	(
		cd "$SRC/tests/integration"
		# tty_run.py: a pty as controlling terminal (tests run containers with
		# "terminal": true in the foreground), plus the per-file timeout.
		exec env -u RUNC_USE_SYSTEMD -u ROOTLESS_FEATURES -u ROOTLESS_TESTPATH \
			RUNC="$bin" TMPDIR="$tmp" \
			"$PY" "$HERE/tty_run.py" "$TIMEOUT" bats --tap "$file.bats"
	) >"$outdir/$file.tap" 2>"$outdir/$file.stderr" </dev/null 9>&- || rc=$?
	echo "$rc" >"$outdir/$file.rc"
	cleanup_tmp "$bin" "$tmp"
	local p f s
	p=$(grep -cE '^ok ' "$outdir/$file.tap" || true)
	s=$(grep -ciE '^ok .*# skip' "$outdir/$file.tap" || true)
	f=$(grep -cE '^not ok ' "$outdir/$file.tap" || true)
	printf '  %-9s pass %3d fail %3d skip %3d  (%ds%s)\n' "$rt" "$((p - s))" "$f" "$s" \
		"$((SECONDS - start))" "$([ "$rc" = 124 ] && echo ", TIMEOUT")" >&2
}

main() {
	[ "$(id -u)" = 0 ] || die "must run as root (the tests create containers)"
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock -n 9 || die "another conformance run holds $CACHE/.lock"

	ensure_packages
	fetch_source
	install_helpers
	install_images
	log "runc test suite: $SRC"

	local file rt
	for file in "${FILES[@]}"; do
		[ -f "$SRC/tests/integration/$file.bats" ] || die "no such test file: $file.bats"
	done

	local stamp results
	stamp=$(date +%Y%m%d-%H%M%S)
	results="$RESULTS_BASE/$stamp"
	mkdir -p "$results"
	ln -sfn "$stamp" "$RESULTS_BASE/latest"

	# Which runtimes can run.
	local -A bin=([pyruntime]=$PYRUNTIME_BIN [runc]=$REFERENCE_BIN)
	local -A before=()
	local active=() all=()
	for rt in $RUNTIMES; do
		[ -n "${bin[$rt]+x}" ] || die "unknown runtime '$rt' in CONFORMANCE_RUNTIMES"
		all+=("$rt")
		mkdir -p "$results/$rt"
		if [[ -n "${bin[$rt]}" && "${bin[$rt]}" != */* ]]; then
			bin[$rt]=$(command -v "${bin[$rt]}" || echo "${bin[$rt]}")
		fi
		if [ -n "${bin[$rt]}" ] && [ -x "${bin[$rt]}" ]; then
			bin[$rt]="$(cd "$(dirname "${bin[$rt]}")" && pwd)/$(basename "${bin[$rt]}")"
			active+=("$rt")
			before[$rt]=$("${bin[$rt]}" list -q 2>/dev/null || true)
			log "$rt: ${bin[$rt]}"
		else
			echo "binary '${bin[$rt]:-runc}' not found or not executable" >"$results/$rt/SKIPPED"
			log "$rt: SKIPPED ($(cat "$results/$rt/SKIPPED"))"
		fi
	done
	[ ${#active[@]} -gt 0 ] || die "no runtime binary available"

	local i=0
	for file in "${FILES[@]}"; do
		i=$((i + 1))
		log "[$i/${#FILES[@]}] $file.bats"
		for rt in "${active[@]}"; do
			run_file "$rt" "${bin[$rt]}" "$file" "$results/$rt"
		done
	done

	for rt in "${active[@]}"; do
		cleanup_default_root "${bin[$rt]}" "${before[$rt]}"
	done
	cleanup_cgroups

	echo
	local IFS=,
	"$PY" "$HERE/tap_summary.py" "$results" "${all[*]}" "${FILES[@]}" || {
		rc=$?
		log "results: $results"
		exit "$rc"
	}
	log "results: $results"
}

main "$@"
