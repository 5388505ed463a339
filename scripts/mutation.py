"""`make mutation`: show that the tests named by each mutation fail when its protection is gone.

Each integration/mutations/<name>.patch holds comment lines `# test: <pytest node id>`
(one or more) and then a unified diff (as `git diff` prints it) that removes one
protection from the runtime.  For every patch this script copies the working tree (the
files git tracks or would track) to a temporary directory, applies the diff there, gives
the copy its own launchers (.venv/bin/pyruntime and dockee-cni-bridge have this checkout's
path built in, see scripts/write-launcher.py) and runs the named tests from the copy with
PYRUNTIME_BIN naming its pyruntime, those launchers first on PATH and PYTHONPATH the copy,
so that the CLIs (dockee-shim's plugin too) and in-process tests use the mutated code.
Every named test must FAIL there.

Before that, the union of the named tests runs once on an unmutated copy (the control):
a test that fails without any mutation shows nothing.  Prints a table; exits non-zero
unless every control run passed and every mutated run failed.

    .venv/bin/python scripts/mutation.py [--no-control] [--ref HEAD] [-k SUBSTRING] [PATCH ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MUTATIONS = REPO / "integration" / "mutations"
PYTHON = REPO / ".venv" / "bin" / "python"


@dataclass
class Mutation:
    path: Path
    tests: list[str]
    diff: str
    outcome: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def name(self) -> str:
        return self.path.stem


def parse(path: Path) -> Mutation:
    tests: list[str] = []
    lines = path.read_text().splitlines(keepends=True)
    start = 0
    for i, line in enumerate(lines):
        if line.startswith("# test:"):
            tests.append(line.split(":", 1)[1].strip())
        elif line.startswith("#") or not line.strip():
            continue
        else:
            start = i
            break
    else:
        start = len(lines)
    diff = "".join(lines[start:])
    if not tests:
        raise SystemExit(f"{path}: no '# test: <node id>' line")
    if not diff.startswith("diff --git ") and not diff.startswith("--- "):
        raise SystemExit(f"{path}: no unified diff after the '# test:' lines")
    return Mutation(path, tests, diff)


def copy_tree(dest: Path, ref: str | None = None) -> None:
    """The working tree as git sees it (tracked and untracked, not ignored) into `dest`;
    or, with `ref`, that commit's tree (other people's uncommitted work left out)."""
    if ref is not None:
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, check=True, capture_output=True).stdout.split(b"\0")
    for rel in files:
        if not rel:
            continue
        src = REPO / os.fsdecode(rel)
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        out = dest / os.fsdecode(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out, follow_symlinks=False)


# (command, its main) for every program the tests run that imports our code: dockee-shim
# runs the CNI plugin found next to its interpreter (attach.plugin_path) and the runtime on
# PATH, so all three come from the copy or a plugin mutation goes unseen
LAUNCHERS = (("pyruntime", "pyruntime.main"), ("dockee-shim", "pyruntime.dockee.cli"),
             ("dockee-cni-bridge", "pyruntime.dockee.network.plugin"))


def write_launcher(copy: Path) -> Path:
    """Launchers like scripts/write-launcher.py's, with the copy first on sys.path, in
    copy/.mutation-bin beside a link to the venv's python (so sys.executable's directory
    holds the copy's dockee-cni-bridge); returns the pyruntime one."""
    paths = [str(copy), sysconfig.get_paths()["purelib"]]
    if sysconfig.get_paths()["platlib"] not in paths:
        paths.append(sysconfig.get_paths()["platlib"])
    bin_dir = copy / ".mutation-bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(PYTHON)
    for name, module in LAUNCHERS:
        launcher = bin_dir / name
        launcher.write_text(f"#!{bin_dir / 'python'} -IS\nimport sys\nsys.path[0:0] = {paths!r}\n"
                            f"from {module} import main\nmain()\n")
        launcher.chmod(0o755)
    return bin_dir / "pyruntime"


def apply(copy: Path, diff: str) -> str:
    """Apply the diff in the copy; return git apply's complaint, or '' on success.  A patch
    whose outer context lines drifted (someone edited next to the protection) still
    applies on one line of context: the removed lines themselves must match exactly."""
    err = ""
    for context in ([], ["-C1"]):
        p = subprocess.run(["git", "apply", "--whitespace=nowarn", *context, "-"], cwd=copy, input=diff,
                           text=True, capture_output=True)
        if p.returncode == 0:
            return ""
        err = err or p.stderr.strip() or "git apply failed"
    return err


def run_tests(copy: Path, tests: list[str], report: Path, timeout: float) -> dict[str, str]:
    """Run `tests` from `copy`; node id -> passed/failed/skipped/error/not run."""
    launcher = copy / ".mutation-bin" / "pyruntime"
    env = {**os.environ, "PYRUNTIME_BIN": str(launcher), "PYTHONPATH": str(copy),
           "PATH": f"{launcher.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "DOCKEE_SHIM": str(launcher.parent / "dockee-shim"),
           "PYRUNTIME_TEST_CACHE": os.environ.get("PYRUNTIME_TEST_CACHE", str(REPO / ".cache" / "test")),
           "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(report), *tests]
    try:
        p = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        log = p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        log = f"timed out after {timeout}s: {e}"
    try:
        root = ET.parse(report).getroot()
    except (OSError, ET.ParseError):
        sys.stderr.write(log[-3000:])
        return {t: "not run" for t in tests}
    results: list[tuple[str, str]] = []
    for case in root.iter("testcase"):
        # junit names: classname "integration.test_x", name "test_y[param]"
        node = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        if case.find("failure") is not None:
            results.append((node, "failed"))
        elif case.find("error") is not None:
            results.append((node, "error"))
        elif case.find("skipped") is not None:
            results.append((node, "skipped"))
        else:
            results.append((node, "passed"))
    outcome = {}
    for t in tests:
        # a node id without parameters stands for all of its cases: all must fail
        mine = [r for n, r in results if n == t or n.startswith(t + "[")]
        bad = [r for r in mine if r != "failed"]
        outcome[t] = "not run" if not mine else (bad[0] if bad else "failed")
    if any(v == "not run" for v in outcome.values()):
        sys.stderr.write(log[-3000:])
    return outcome


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("patches", nargs="*", type=Path, help="default: integration/mutations/*.patch")
    ap.add_argument("-k", dest="substring", default="", help="only patches whose name contains this")
    ap.add_argument("--no-control", action="store_true", help="skip the run on the unmutated copy")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per pytest run")
    ap.add_argument("--ref", default=None,
                    help="copy this commit (e.g. HEAD) instead of the working tree")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("mutation: the integration tests need root", file=sys.stderr)
        return 2
    paths = args.patches or sorted(MUTATIONS.glob("*.patch"))
    muts = [parse(p) for p in paths if args.substring in p.stem]
    if not muts:
        print("mutation: no patches", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="pyrt-mutation-"))
    work.chmod(0o755)  # the rootless tests run the copy's launcher as a throwaway user
    control: dict[str, str] = {}
    try:
        if not args.no_control:
            tests = list(dict.fromkeys(t for m in muts for t in m.tests))
            copy = work / "control"
            copy_tree(copy, args.ref)
            write_launcher(copy)
            print(f"mutation: control run of {len(tests)} tests on an unmutated copy", flush=True)
            control = run_tests(copy, tests, work / "control.xml", args.timeout)
            shutil.rmtree(copy, ignore_errors=True)
        for m in muts:
            copy = work / m.name
            copy_tree(copy, args.ref)
            write_launcher(copy)
            m.note = apply(copy, m.diff)
            if m.note:
                m.outcome = {t: "patch does not apply" for t in m.tests}
            else:
                print(f"mutation: {m.name}: {len(m.tests)} tests", flush=True)
                m.outcome = run_tests(copy, m.tests, work / f"{m.name}.xml", args.timeout)
            shutil.rmtree(copy, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ok = True
    rows = [("mutation", "test", "unmutated", "mutated", "verdict")]
    for m in muts:
        for t in m.tests:
            base = control.get(t, "-")
            got = m.outcome.get(t, "not run")
            good = got == "failed" and base in ("passed", "-")
            ok &= good
            rows.append((m.name, t, base, got, "ok" if good else "NOT SHOWN"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for m in muts:
        if m.note:
            print(f"{m.name}: {m.note}", file=sys.stderr)
    print("mutation: every mutated run failed" if ok else "mutation: some mutation was not caught (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
