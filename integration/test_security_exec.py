"""Issue 14: the ways a container reached the host through `exec` and `run`, as attacks.

In every test the image or the running container is the attacker, and the test asserts
that the effect on the host side (a scratch file or directory under tmp_path standing for
the caller's files) is absent.  Each attack also runs against runc in the same test, when
runc is installed, to show where pyruntime matches it and where it is stricter; each test
has a mutation patch in integration/mutations/exec-*.patch or run-*.patch that removes
the protection, under which the test fails (`make mutation`).

Also the two exec items of issue 10: runc's wording of exec failures (which podman turns
into 126 and 127) and the container's oomScoreAdj for exec'd processes.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from harness import run_captured, wait_until
from test_podman import podman  # noqa: F401 - the module-scoped podman of test_podman.py

from conftest import Runtime, base_config

SECRET = "host secret, not for containers\n"


# --- helpers ---------------------------------------------------------------------------


def peers(request: pytest.FixtureRequest, pyrt: Runtime) -> dict[str, Runtime]:
    """pyruntime, and runc beside it where runc is installed."""
    out = {"pyruntime": pyrt}
    if shutil.which("runc"):
        out["runc"] = request.getfixturevalue("runc")
    return out


def sh(rt: Runtime, line: str, timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
    """`<runtime> --root R <line>` through bash, so that the line can redirect and open
    descriptors as a caller would."""
    return run_captured(["bash", "-c", f"exec {rt.binary} --root {rt.root} {line}"],
                        timeout=timeout, **kw)


def hung(rt: Runtime, line: str, timeout: float, **kw: Any) -> subprocess.CompletedProcess[str] | None:
    """sh(), or None when it did not end within `timeout` (it is killed then)."""
    try:
        return sh(rt, line, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        return None


def host_dir(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "secret").write_text(SECRET)
    return d


def running(rt: Runtime, config: dict[str, Any] | None = None,
            prepare: Any = None) -> tuple[str, Path]:
    """A detached container that sleeps; `prepare(rootfs)` edits its image first."""
    b = rt.bundle(config or base_config(["sleep", "1000"]))
    if prepare is not None:
        prepare(b / "rootfs")
    cid = rt.new_id()
    p = sh(rt, f"run -d --bundle {b} {cid} </dev/null >/dev/null 2>&1")
    assert p.returncode == 0, p.stderr
    return cid, b / "rootfs"


def in_container(rt: Runtime, cid: str, script: str) -> str:
    p = rt("exec", cid, "sh", "-c", script, timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p.stdout


# --- 1. foreground run/exec: pipes, not the caller's own files --------------------------------


STDIO_ATTACK = ("readlink /proc/self/fd/0; readlink /proc/self/fd/1; echo PWNED > /proc/self/fd/0; "
                "chmod 6777 /proc/self/fd/1 /proc/self/fd/2; echo done")


def _stdio_attack(rt: Runtime, tmp: Path) -> dict[str, Any]:
    host = host_dir(tmp, f"caller-{Path(rt.binary).name}")
    src, log = host / "input", host / "log"
    obs: dict[str, Any] = {}
    b = rt.bundle(base_config(["sh", "-c", STDIO_ATTACK]))
    for verb in ("run", "exec"):
        src.write_text("the caller's input\n")
        log.write_text("")
        log.chmod(0o644)
        if verb == "run":
            p = sh(rt, f"run --bundle {b} {rt.new_id()} <{src} >>{log} 2>&1")
        else:
            cid, _ = running(rt)
            p = sh(rt, f"exec {cid} sh -c '{STDIO_ATTACK}' <{src} >>{log} 2>&1")
        out = log.read_text()
        obs[verb] = {"rc": p.returncode, "done": out.endswith("done\n"),
                     "stdio inside": [line.split(":")[0] for line in out.splitlines()[:2]],
                     "input file": src.read_text(), "log mode": oct(stat.S_IMODE(log.stat().st_mode))}

    # a terminal on stdin: a background reader must not get what the user types after exec
    cid, _ = running(rt)
    master, slave = pty.openpty()
    try:
        p = sh(rt, f"exec {cid} sh -c 'cat </proc/self/fd/0 >/tmp/typed 2>/dev/null & echo started'",
               stdin=slave)
        os.write(master, b"typed-at-the-host-shell\n")
        stolen = wait_until(lambda: "typed" in in_container(rt, cid, "cat /tmp/typed"), timeout=3)
        obs["tty"] = {"rc": p.returncode, "out": p.stdout, "typed text reached the container": stolen}
    finally:
        os.close(master)
        os.close(slave)
    return obs


def test_foreground_stdio_is_pipes_not_the_callers_files(request: pytest.FixtureRequest,
                                                          pyrt: Runtime, tmp_path: Path) -> None:
    """Item 1.  The container reopens its stdin by path and writes to it, and chmods its
    stdout/stderr 6777: with the caller's descriptors passed as they are, that overwrote
    the file the caller redirected from and made the caller's log setuid and
    world-writable.  And a background `cat` reopening stdin kept reading the caller's
    terminal after `exec` returned.  Foreground `run` and `exec` now give pipes (as runc):
    the files are untouched, the process sees `pipe:[...]`, nothing typed later leaks."""
    seen = {name: _stdio_attack(rt, tmp_path) for name, rt in peers(request, pyrt).items()}
    want_verb = {"rc": 0, "done": True, "stdio inside": ["pipe", "pipe"],
                 "input file": "the caller's input\n", "log mode": "0o644"}
    want = {"run": want_verb, "exec": want_verb,
            "tty": {"rc": 0, "out": "started\n", "typed text reached the container": False}}
    assert seen["pyruntime"] == want
    if "runc" in seen:
        assert seen["runc"] == want, "runc gives pipes too"


# --- 2. exec --user: numbers, no host-side reading of the container's /etc --------------------


def _user_attack(rt: Runtime, tmp: Path) -> dict[str, Any]:
    host = host_dir(tmp, f"users-{Path(rt.binary).name}")
    (host / "passwd").write_text("root:x:4242:4343:chosen by the image:/evil:/bin/sh\n")
    os.mkfifo(host / "fifo")
    cid, _ = running(rt)
    obs: dict[str, Any] = {}
    # the running container points its /etc files at host paths (resolved on the host
    # side by a runtime that reads <rootfs>/etc/passwd), or at /dev/zero
    for case, script in (("host files", f"ln -sf {host / 'passwd'} /etc/passwd; "
                                        f"ln -sf {host / 'fifo'} /etc/group"),
                         ("/dev/zero", "ln -sf /dev/zero /etc/passwd")):
        in_container(rt, cid, script)
        for user in ("root", "0:root", "1000:1000"):
            # (not `id`: it reads /etc/passwd itself, and would read /dev/zero forever)
            p = hung(rt, f"exec --user {user} {cid} grep '^[UG]id:' /proc/self/status", timeout=20)
            ids = " ".join(f"{line.split()[0].lower()}{line.split()[1]}" for line in
                           p.stdout.splitlines()) if p else ""
            obs[f"{case}, --user {user}"] = ("hung" if p is None else
                                             (p.returncode, ids.replace(":", "="),
                                              "not a number" in p.stderr or "parsing" in p.stderr))
    return obs


def test_exec_user_reads_nothing_of_the_container_from_the_host(
        request: pytest.FixtureRequest, pyrt: Runtime, tmp_path: Path) -> None:
    """Item 2.  The container links /etc/passwd to a host file in passwd format (which
    chose the uid 4242), /etc/group to a host FIFO (which hung exec), or /etc/passwd to
    /dev/zero (which grew the runtime until MemoryError): `exec --user NAME` read them
    from the host side.  Now --user is uid[:gid] in numbers, as in runc: a name is
    refused at once, never looked up, and numbers work whatever /etc says (runc fails
    the last one: its init reads /dev/zero for HOME and gives up; we refuse to read it)."""
    seen = {name: _user_attack(rt, tmp_path) for name, rt in peers(request, pyrt).items()}
    for name, obs in seen.items():
        for case in ("host files", "/dev/zero"):
            for user in ("root", "0:root"):
                assert obs[f"{case}, --user {user}"] == (255, "", True), (name, obs)
        assert obs["host files, --user 1000:1000"] == (0, "uid=1000 gid=1000", False), (name, obs)
    assert seen["pyruntime"]["/dev/zero, --user 1000:1000"] == (0, "uid=1000 gid=1000", False)
    assert all("4242" not in str(v) for v in seen["pyruntime"].values())


# --- 3. exec opens container paths: no caller fd behind them, only the real device -------------


DEVNULL_PROBE = ("echo PWNED >&0; echo PWNED >> /proc/self/fd/0; cat <&0 >/tmp/leak{n}; "
                 "readlink /proc/self/fd/0 >/tmp/fd0-{n}; touch /done{n}")


def _devnull_attack(rt: Runtime, tmp: Path) -> dict[Any, Any]:
    host = host_dir(tmp, f"devnull-{Path(rt.binary).name}")
    other = host / "other"
    other.write_text(SECRET)
    cid, rootfs = running(rt)
    obs: dict[Any, Any] = {}
    # the container points its /dev/null at a descriptor the next exec will have: 3 is
    # preserved (given read-only), 9 is not given at all
    for n, fds in ((3, f"3<{host / 'secret'}"), (9, f"9<{other}")):
        in_container(rt, cid, f"rm -f /dev/null; ln -s /proc/self/fd/{n} /dev/null")
        preserve = "--preserve-fds 1" if n == 3 else ""
        p = sh(rt, f"exec -d {preserve} {cid} sh -c '{DEVNULL_PROBE.format(n=n)}' "
                   f"</dev/null >/dev/null 2>&1 {fds}")
        if p.returncode != 0:
            obs[n] = f"exec refused ({p.returncode})"
            continue
        assert wait_until((rootfs / f"done{n}").exists, timeout=15)
        obs[n] = {"stdin inside": (rootfs / "tmp" / f"fd0-{n}").read_text().strip(),
                  "leaked": (rootfs / "tmp" / f"leak{n}").read_text()}
    obs["host files"] = [(host / "secret").read_text(), other.read_text()]
    return obs


def test_exec_reopens_no_caller_file_through_a_fake_dev_null(
        request: pytest.FixtureRequest, pyrt: Runtime, tmp_path: Path) -> None:
    """Item 3.  The running container replaces its /dev/null with a symlink to
    /proc/self/fd/N; `exec -d ... </dev/null N<secret` then gave the process the host
    file, reopened read-write, as its stdin: it read the secret and appended to it.  Now
    the caller's descriptors are closed before any container path is opened, and
    /dev/null is opened O_NOFOLLOW and taken only if it is the device 1:3; so the process
    keeps the caller's (read-only) /dev/null.  runc does not reopen /dev/null in exec."""
    seen = {name: _devnull_attack(rt, tmp_path) for name, rt in peers(request, pyrt).items()}
    for name, obs in seen.items():
        assert obs["host files"] == [SECRET, SECRET], (name, obs)
    assert seen["pyruntime"][3] == seen["pyruntime"][9] == {"stdin inside": "/dev/null", "leaked": ""}
    if "runc" in seen:
        # runc stats /dev/null for the stdio it chowns, and fails on the dangling link
        assert seen["runc"][9] == "exec refused (255)", seen["runc"]


# --- 4. --pid-file in a directory the container can write --------------------------------------


def _pid_file_attack(rt: Runtime, tmp: Path) -> dict[str, Any]:
    host = host_dir(tmp, f"pidfile-{Path(rt.binary).name}")
    shared = tmp / f"shared-{Path(rt.binary).name}"
    shared.mkdir()
    cfg = base_config(["sleep", "1000"])
    cfg["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared),
                          "options": ["rbind", "rw"]})
    cid, _ = running(rt, cfg)
    victim = host / "secret"
    # The container plants runc's temp name itself; pyruntime's old `.NAME.<pid>.tmp`
    # for every pid is planted from here into the same directory, on its behalf (busybox
    # would need a minute for 32768 links; the names in the directory are the same).
    in_container(rt, cid, f"ln -s {victim} /shared/.exec.pid")
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    first = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    for pid in range(first, first + min(pid_max, 40000)):
        (shared / f".exec.pid.{pid % pid_max}.tmp").symlink_to(victim)
    p = sh(rt, f"exec -d --pid-file {shared}/exec.pid {cid} sleep 1000 >/dev/null 2>&1")
    written = (shared / "exec.pid").read_text() if (shared / "exec.pid").is_file() else ""
    return {"rc": p.returncode, "victim": victim.read_text(), "pid file": written.isdigit()}


def test_pid_file_temp_name_is_not_planted(request: pytest.FixtureRequest, pyrt: Runtime,
                                           tmp_path: Path) -> None:
    """Item 4.  The pid file is in a directory the container shares (rw); symlinks to a
    host file sit at every name the temp file could predictably have.  pyruntime's old
    `.NAME.<pid>.tmp`, opened O_CREAT|O_TRUNC, overwrote the host file with a pid.  Now
    the temp name is random and created O_EXCL|O_NOFOLLOW: the host file is unchanged
    and the pid file written.  runc (O_EXCL on its fixed `.NAME`) leaves the file alone
    too but fails the exec: we are stricter in that the container cannot make us fail."""
    seen = {name: _pid_file_attack(rt, tmp_path) for name, rt in peers(request, pyrt).items()}
    assert seen["pyruntime"] == {"rc": 0, "victim": SECRET, "pid file": True}
    if "runc" in seen:
        assert seen["runc"] == {"rc": 255, "victim": SECRET, "pid file": False}


# --- 5. LISTEN_FDS without LISTEN_PID -------------------------------------------------------------


def test_listen_fds_without_our_pid_passes_nothing(request: pytest.FixtureRequest,
                                                   pyrt: Runtime, tmp_path: Path) -> None:
    """Item 5.  `LISTEN_FDS=1 pyruntime run ... 3<HOSTDIR` (LISTEN_PID unset, 0, or some
    other process's) gave the container fd 3, through which it listed the host's
    directory.  Socket activation's contract: LISTEN_FDS counts only for the process
    named by LISTEN_PID.  runc follows it too."""
    host = host_dir(tmp_path, "activated")
    probe = "ls /proc/self/fd/3/ 2>&1; echo fds=$LISTEN_FDS"
    seen: dict[str, dict[str, str]] = {}
    for name, rt in peers(request, pyrt).items():
        seen[name] = {}
        for pid in ("", "0", "1"):
            env = "LISTEN_FDS=1" + (f" LISTEN_PID={pid}" if pid else "")
            b = rt.bundle(base_config(["sh", "-c", probe]))
            p = run_captured(["bash", "-c", f"exec 3<{host}; {env} exec {rt.binary} --root {rt.root} "
                              f"run --bundle {b} {rt.new_id()}"], timeout=60)
            seen[name][pid or "unset"] = p.stdout
    for name, outs in seen.items():
        for pid, out in outs.items():
            assert "secret" not in out and "fds=\n" in out, (name, pid, out)


# --- better than runc: no hang on a FIFO, a deadline for the setup handshake ------------------


def test_exec_does_not_hang_on_a_fifo_passwd(request: pytest.FixtureRequest, pyrt: Runtime) -> None:
    """The container makes its /etc/passwd a FIFO; exec reads it for HOME.  runc hangs
    there for good; pyruntime opens it non-blocking, takes regular files only, and runs
    the process with HOME=/."""
    seen = {}
    for name, rt in peers(request, pyrt).items():
        cid, _ = running(rt)
        in_container(rt, cid, "rm /etc/passwd; mkfifo /etc/passwd")
        p = hung(rt, f"exec {cid} sh -c 'echo HOME=$HOME'", timeout=20 if name == "pyruntime" else 8)
        seen[name] = "hung" if p is None else (p.returncode, p.stdout)
    assert seen["pyruntime"] == (0, "HOME=/\n")
    if "runc" in seen:
        assert seen["runc"] == "hung", "runc 1.1 hangs here (we are stricter)"


STOPPER = ("while :; do for d in /proc/[0-9]*; do read -r c < $d/cmdline 2>/dev/null; "
           "case \"$c\" in *pyruntime*|*runc*) kill -STOP ${d#/proc/} 2>/dev/null;; esac; "
           "done; done")


def test_exec_fails_when_the_container_stops_its_setup(request: pytest.FixtureRequest,
                                                       pyrt: Runtime, tmp_path: Path) -> None:
    """The container SIGSTOPs every process of the runtime's that appears in its pid
    namespace, i.e. exec's setup process before it runs the command.  runc's exec hangs;
    pyruntime's fails within seconds with one line saying so (and kills what it started)."""
    seen = {}
    for name, rt in peers(request, pyrt).items():
        cid, rootfs = running(rt)
        (rootfs / "stopper.sh").write_text(STOPPER)
        assert sh(rt, f"exec -d {cid} sh /stopper.sh </dev/null >/dev/null 2>&1").returncode == 0
        outcomes = []
        for _ in range(10):
            start = time.monotonic()
            p = hung(rt, f"exec -d {cid} true </dev/null", timeout=20 if name == "pyruntime" else 8)
            outcomes.append("hung" if p is None else (p.returncode, p.stderr.strip(),
                                                      time.monotonic() - start < 15))
            if p is None or p.returncode != 0:
                break  # caught: that is the case under test
        seen[name] = outcomes[-1]
    assert seen["pyruntime"] == (255, "pyruntime: exec: the process was stopped during setup "
                                      "(waiting for ready), by a signal from inside the container?",
                                 True), seen
    if "runc" in seen:
        assert seen["runc"] == "hung", "runc 1.1 hangs here (we are stricter)"


# --- issue 10, item 3: runc's words for exec failures, and podman's exit codes --------------------


def test_exec_failure_words_are_runcs(request: pytest.FixtureRequest, pyrt: Runtime) -> None:
    """podman and docker choose 126 or 127 from the runtime's message: `exec: "X":
    permission denied` (a directory, not executable) or `exec: "X": stat X: no such file
    or directory` / `executable file not found in $PATH`.  For create/run and exec."""
    cases = {"/etc/passwd": 'exec: "/etc/passwd": permission denied',
             "/etc": 'exec: "/etc": permission denied',
             "/nonexistent": 'exec: "/nonexistent": stat /nonexistent: no such file or directory',
             "nonexistent": 'exec: "nonexistent": executable file not found in $PATH'}
    for name, rt in peers(request, pyrt).items():
        cid, _ = running(rt)
        for cmd, words in cases.items():
            p = rt.run(base_config([cmd]))
            # (runc's log lines quote the message: \" for ")
            err = p.stderr.replace('\\"', '"')
            assert p.returncode != 0 and words in err, (name, "run", cmd, p.stderr)
            p = rt("exec", cid, cmd)
            err = p.stderr.replace('\\"', '"')
            assert p.returncode == 255 and words in err, (name, "exec", cmd, p.stderr)


@pytest.mark.skipif(not all(shutil.which(t) for t in ("podman", "conmon", "runc")),
                    reason="needs podman, conmon and runc")
def test_podman_maps_exec_failures_to_126_and_127(request: pytest.FixtureRequest) -> None:
    """Through real podman and conmon: `run IMAGE /etc/passwd` is 126 and
    `run IMAGE /nonexistent` 127, with pyruntime as with runc; `exec` the same."""
    import test_podman as tp

    pm = request.getfixturevalue("podman")

    seen = {}
    for name, binary in tp.RUNTIMES.items():
        codes = []
        for cmd in ("/etc/passwd", "/nonexistent"):
            codes.append(pm(binary, "run", "--rm", *tp.RUN_FLAGS, tp.IMAGE, cmd).returncode)
        p = pm(binary, "run", "-d", *tp.RUN_FLAGS, tp.IMAGE, "sleep", "100")
        cid = p.stdout.strip()
        for cmd in ("/etc/passwd", "/nonexistent"):
            codes.append(pm(binary, "exec", cid, cmd).returncode)
        pm(binary, "rm", "-f", "-t", "0", cid)
        seen[name] = codes
    assert seen == {"runc": [126, 127, 126, 127], "pyruntime": [126, 127, 126, 127]}


# --- issue 10, item 7: exec'd processes get the container's oomScoreAdj --------------------------


def test_exec_gets_the_containers_oom_score_adj(request: pytest.FixtureRequest, pyrt: Runtime,
                                                tmp_path: Path) -> None:
    """The container says oomScoreAdj 777; `exec` runs `cat /proc/self/oom_score_adj` from
    a caller whose own value is 3.  runc: 777; with --process giving 555, 555; with a
    --process that gives none, the container's 777."""
    def caller_at_3() -> None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("3")

    seen = {}
    for name, rt in peers(request, pyrt).items():
        cfg = base_config(["sleep", "1000"])
        cfg["process"]["oomScoreAdj"] = 777
        cid, _ = running(rt, cfg)
        outs = [rt("exec", cid, "sh", "-c", "cat /proc/self/oom_score_adj",
                   preexec_fn=caller_at_3).stdout.strip()]
        for given in (555, None):
            proc = {**cfg["process"], "args": ["cat", "/proc/self/oom_score_adj"]}
            proc.pop("oomScoreAdj")
            if given is not None:
                proc["oomScoreAdj"] = given
            doc = tmp_path / f"process-{name}-{given}.json"
            doc.write_text(json.dumps(proc))
            outs.append(rt("exec", "--process", str(doc), cid, preexec_fn=caller_at_3).stdout.strip())
        seen[name] = outs
    assert seen["pyruntime"] == ["777", "555", "777"]
    if "runc" in seen:
        assert seen["runc"][0] == "777" and seen["runc"][2] == "777", seen["runc"]
