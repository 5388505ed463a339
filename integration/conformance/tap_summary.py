"""Summarise bats TAP output for several runtimes side by side.

    tap_summary.py RESULTS_DIR RUNTIME[,RUNTIME...] FILE [FILE...]

Expects RESULTS_DIR/<runtime>/<file>.tap (raw `bats --tap` output) and
optionally RESULTS_DIR/<runtime>/<file>.rc (exit status of the bats run;
124 = killed by the per-file timeout). A runtime whose directory holds a
SKIPPED file is shown as "n/a" with the reason.

Writes RESULTS_DIR/summary.txt (the table, also printed),
RESULTS_DIR/differences.txt (tests whose outcome differs between runtimes) and
RESULTS_DIR/regressions.txt (tests runc passes and pyruntime fails, minus
ALLOWED below).
Exit status: 3 when a TAP file is missing/has no plan line (the harness itself
broke for that file), else 4 when there is a regression, else 0.
"""
import os
import re
import sys

# Tests runc passes that pyruntime may fail, as "<file>: <test name>" regexes.  Keep
# it short: only what is runc's by definition, never a behaviour.
ALLOWED = [
    # identity texts: the name and version lines say "runc"
    r"^version: ",
    r"^help: ",
    # runc's internal debug messages that tests grep for: "nsexec container setup",
    # "child process in init()", "setns_init: about to exec" (pyruntime's --debug lines
    # say what it does in its own words)
    r"^debug: ",
    r"^exec: runc --debug (--log )?exec$",
]

PLAN = re.compile(r"^1\.\.(\d+)")
RESULT = re.compile(r"^(not ok|ok) (\d+)(?: (.*))?$")
SKIP = re.compile(r"\s+#\s*skip\b.*$", re.IGNORECASE)


def parse_tap(path):
    """Return dict(plan, pass, fail, skip, tests{name: outcome}) or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    res = {"plan": None, "pass": 0, "fail": 0, "skip": 0, "tests": {}}
    for line in lines:
        m = PLAN.match(line)
        if m and res["plan"] is None:
            res["plan"] = int(m.group(1))
            continue
        m = RESULT.match(line)
        if not m:
            continue
        name = m.group(3) or ""
        if m.group(1) == "not ok":
            outcome = "fail"
        elif SKIP.search(name):
            outcome = "skip"
        else:
            outcome = "pass"
        res[outcome] += 1
        res["tests"][SKIP.sub("", name)] = outcome
    if res["plan"] is None:
        return None
    return res


def read_rc(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None


def main():
    if len(sys.argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    results, runtimes, files = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
    broken = False
    skipped = {}
    for rt in runtimes:
        marker = os.path.join(results, rt, "SKIPPED")
        if os.path.exists(marker):
            with open(marker) as f:
                skipped[rt] = f.read().strip() or "skipped"

    data = {}
    notes = []
    for fname in files:
        for rt in runtimes:
            if rt in skipped:
                continue
            base = os.path.join(results, rt, fname)
            res = parse_tap(base + ".tap")
            rc = read_rc(base + ".rc")
            if res is None:
                broken = True
                notes.append(f"{fname} [{rt}]: no TAP plan (bats could not run the file), see {base}.tap")
                data[(fname, rt)] = None
                continue
            missing = res["plan"] - (res["pass"] + res["fail"] + res["skip"])
            if missing > 0:
                res["fail"] += missing  # unreported tests count as failures
                why = "timed out" if rc == 124 else f"bats exited {rc}"
                notes.append(f"{fname} [{rt}]: {why}; {missing} of {res['plan']} tests never reported, counted as fail")
            data[(fname, rt)] = res

    def cell(res):
        if res is None:
            return f"{'ERR':>5} {'':>5} {'':>5}"
        return f"{res['pass']:>5} {res['fail']:>5} {res['skip']:>5}"

    width = max([len("file")] + [len(f) for f in files] + [len("TOTAL")])
    head1 = f"{'':<{width}}"
    head2 = f"{'file':<{width}}"
    for rt in runtimes:
        head1 += f" | {rt:^17}"
        head2 += f" | {'pass':>5} {'fail':>5} {'skip':>5}"
    out = [head1, head2, "-" * len(head2)]
    totals = {rt: {"pass": 0, "fail": 0, "skip": 0} for rt in runtimes}
    for fname in files:
        row = f"{fname:<{width}}"
        for rt in runtimes:
            if rt in skipped:
                row += f" | {'n/a':^17}"
                continue
            res = data.get((fname, rt))
            row += " | " + cell(res)
            if res:
                for k in ("pass", "fail", "skip"):
                    totals[rt][k] += res[k]
        out.append(row)
    out.append("-" * len(head2))
    row = f"{'TOTAL':<{width}}"
    for rt in runtimes:
        row += f" | {'n/a':^17}" if rt in skipped else " | " + cell(totals[rt])
    out.append(row)
    for rt, why in skipped.items():
        out.append(f"note: {rt} column skipped: {why}")
    out.extend("note: " + n for n in notes)
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    with open(os.path.join(results, "summary.txt"), "w") as f:
        f.write(text)

    # Per-test differences between the runtimes that actually ran.
    ran = [rt for rt in runtimes if rt not in skipped]
    diff = []
    if len(ran) > 1:
        for fname in files:
            per_rt = [data.get((fname, rt)) for rt in ran]
            if any(r is None for r in per_rt):
                continue
            names = []
            for r in per_rt:
                names += [n for n in r["tests"] if n not in names]
            for n in names:
                outcomes = [r["tests"].get(n, "missing") for r in per_rt]
                if len(set(outcomes)) > 1:
                    pairs = zip(ran, outcomes, strict=False)
                    diff.append(f"{fname}: {n}: " + ", ".join(f"{rt}={o}" for rt, o in pairs))
    with open(os.path.join(results, "differences.txt"), "w") as f:
        f.write("\n".join(diff) + ("\n" if diff else ""))
    if diff:
        sys.stdout.write(f"{len(diff)} tests differ between runtimes: see {os.path.join(results, 'differences.txt')}\n")
    regressions = find_regressions(data, files, ran)
    with open(os.path.join(results, "regressions.txt"), "w") as f:
        f.write("\n".join(regressions) + ("\n" if regressions else ""))
    for r in regressions:
        sys.stdout.write(f"REGRESSION (runc passes, pyruntime fails): {r}\n")
    if broken:
        return 3
    return 4 if regressions else 0


def find_regressions(data, files, ran):
    """'<file>: <test>' for every test runc passes and pyruntime fails (or never reports)."""
    if "runc" not in ran or "pyruntime" not in ran:
        return []
    out = []
    for fname in files:
        ref, ours = data.get((fname, "runc")), data.get((fname, "pyruntime"))
        if ref is None:
            continue
        for name, outcome in ref["tests"].items():
            if outcome != "pass":
                continue
            got = ours["tests"].get(name, "missing") if ours else "missing"
            key = f"{fname}: {name}"
            if got in ("fail", "missing") and not any(re.search(a, key) for a in ALLOWED):
                out.append(key)
    return out


if __name__ == "__main__":
    sys.exit(main())
