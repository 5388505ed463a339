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
    return 0


if __name__ == "__main__":
    sys.exit(main())
