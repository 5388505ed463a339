#!/usr/bin/env python3
"""dockee-shim image benchmarks (as root): `import` of the Debian tarball against `tar -x`.

In one run, alternating, each --repeat times on the same warm tarball (built once per
machine by integration/dockee_images.debian_tarball, i.e. bundles/debian.sh):
  - `tar -xf DEBIAN.tar -C DIR` (GNU tar, as root: owners, modes and devices kept),
  - `dockee-shim --root ROOT import DEBIAN.tar bench` into a fresh store,
each followed by `sync` outside the timed part, and prints the medians and their ratio
(target <= 1.2: import also hashes the stream and checks every entry).  Also times `save`
of the imported image.  Everything made is removed, even on failure.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "integration"))


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    dt = time.perf_counter() - t
    subprocess.run(["sync"], check=True)
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-run", action="store_true", help="only the image benchmarks")
    ap.add_argument("--tarball", help="a docker-export tarball (default: the cached Debian one)")
    ap.add_argument("--dockee", default=shutil.which("dockee-shim") or str(REPO / ".venv/bin/dockee-shim"))
    args = ap.parse_args()
    if args.tarball:
        tarball = Path(args.tarball)
    else:
        from dockee_images import debian_tarball

        tarball = debian_tarball()
    size = tarball.stat().st_size
    work = Path(tempfile.mkdtemp(prefix="bench-dockee-", dir=REPO / ".cache"))
    tar_t: list[float] = []
    imp_t: list[float] = []
    save_t: list[float] = []
    try:
        for i in range(args.repeat):
            dest = work / f"x{i}"
            dest.mkdir()
            tar_t.append(timed(["tar", "-xf", str(tarball), "-C", str(dest)]))
            shutil.rmtree(dest)
            root = work / f"root{i}"
            imp_t.append(timed([args.dockee, "--root", str(root), "import", str(tarball), "bench"]))
            save_t.append(timed([args.dockee, "--root", str(root), "save", "-o", str(work / "s.tar"), "bench"]))
            (work / "s.tar").unlink()
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t, m, s = statistics.median(tar_t), statistics.median(imp_t), statistics.median(save_t)
    print(f"tarball: {tarball.name} ({size / 1e6:.0f} MB), {args.repeat} runs each, medians")
    print(f"  tar -x:            {t:7.2f} s")
    print(f"  dockee-shim import:{m:7.2f} s   ratio {m / t:.2f}  (target <= 1.20)")
    print(f"  dockee-shim save:  {s:7.2f} s")
    if not args.skip_run:
        run_vs_podman(args.dockee, args.repeat * 3)
    return 0


# ---- containers: `run --rm IMAGE true` against podman, debian against busybox, monitor RSS ----

PODMAN_ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _median_run(cmd: list[str], repeat: int) -> float:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm-up (first-use work, caches)
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _nft_tables() -> set[tuple[str, str]]:
    p = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return {(w[1], w[2]) for w in (line.split() for line in p.stdout.splitlines()) if len(w) == 3}


def run_vs_podman(dockee: str, repeat: int) -> None:
    """dockee-shim run --rm busybox true vs podman run --rm on the same image (saved by dockee, loaded
    by podman into a private store), with and without a network; debian vs busybox; conmon's RSS."""
    work = Path(tempfile.mkdtemp(prefix="bench-dockee-run-"))
    dk = [dockee, "--root", str(work / "store"), "--runtime-root", str(work / "rt")]
    pm = ["podman", "--root", str(work / "podman"), "--runroot", str(work / "podman-run"),
          "--tmpdir", str(work / "podman-tmp"), "--storage-driver", "overlay",
          "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    results: list[tuple[str, float]] = []
    tables_before = _nft_tables()
    try:
        subprocess.run([*dk, "save", "-o", str(work / "busybox.tar"), "busybox"], check=True,
                       stdout=subprocess.DEVNULL)
        have_podman = shutil.which("podman") is not None
        if have_podman:
            subprocess.run([*pm, "load", "-i", str(work / "busybox.tar")], check=True, capture_output=True)
        for net in ("none", "default"):
            dnet = ["--net", "none"] if net == "none" else []
            pnet = ["--network", "none"] if net == "none" else []
            try:
                d = _median_run([*dk, "run", "--rm", *dnet, "busybox", "true"], repeat)
            except subprocess.CalledProcessError as e:
                print(f"  (dockee-shim run, net {net}, failed: exit {e.returncode})")
                continue
            results.append((f"dockee-shim run --rm busybox true (net {net})", d))
            if net == "none":  # podman drives runc: the same runtime under dockee-shim, for the front ends alone
                r = _median_run([*dk, "--runtime", "runc", "run", "--rm", *dnet, "busybox", "true"], repeat)
                results.append(("dockee-shim --runtime runc run --rm busybox true (net none)", r))
            if have_podman:
                p = _median_run([*pm, "run", "--rm", "--pull", "never", *PODMAN_ULIMITS, *pnet, "busybox:latest",
                                 "true"], repeat)
                results.append((f"podman run --rm busybox true (net {net})", p))
                results.append((f"  ratio dockee/podman (net {net}, target <= 1.0)", d / p))
                if net == "none":
                    results.append(("  ratio dockee+runc/podman (net none, both on runc)", r / p))
        try:
            sys.path.insert(0, str(REPO / "integration"))
            from dockee_images import debian_tarball

            subprocess.run([*dk, "import", str(debian_tarball()), "bench-debian"], check=True,
                           stdout=subprocess.DEVNULL)
            deb = _median_run([*dk, "run", "--rm", "--net", "none", "bench-debian", "true"], repeat)
            bb = _median_run([*dk, "run", "--rm", "--net", "none", "busybox", "true"], repeat)
            results.append(("dockee-shim run --rm debian true (net none)", deb))
            results.append(("  ratio debian/busybox (target <= 1.1)", deb / bb))
        except Exception as e:  # the Debian tarball needs debootstrap and a mirror
            print(f"  (debian run skipped: {e})")
        cid = subprocess.run([*dk, "run", "-d", "--net", "none", "busybox", "sleep", "60"], check=True,
                             capture_output=True, text=True).stdout.strip()
        conmon = int((work / "store" / "containers" / cid / "conmon.pid").read_text())
        results.append(("RSS of one detached container's monitor (conmon), KiB", float(_rss_kib(conmon))))
        subprocess.run([*dk, "rm", "-f", cid], check=True, stdout=subprocess.DEVNULL)
    finally:
        for cid in subprocess.run([*dk, "ps", "-aq"], capture_output=True, text=True).stdout.split():
            subprocess.run([*dk, "rm", "-f", cid], capture_output=True)
        subprocess.run([*dk, "network", "rm", "dockee0"], capture_output=True)  # its bridge and nft table
        if shutil.which("podman"):
            subprocess.run([*pm, "rm", "-af"], capture_output=True)
            subprocess.run([*pm, "system", "reset", "-f"], capture_output=True)
            # podman's default network (netavark) makes iptables-nft's nat and filter tables and
            # leaves them: remove the ones that this run made
            for family, name in sorted(_nft_tables() - tables_before):
                if name in ("nat", "filter"):
                    subprocess.run(["nft", "delete", "table", family, name], capture_output=True)
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                  if str(work) in line.split()[1]]
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"containers: medians of {repeat} runs after a warm-up")
    for label, value in results:
        unit = "" if "ratio" in label or "KiB" in label else " s"
        print(f"  {label:<62}{value:8.3f}{unit}" if unit or "ratio" in label else f"  {label:<62}{value:8.0f}")


if __name__ == "__main__":
    sys.exit(main())
