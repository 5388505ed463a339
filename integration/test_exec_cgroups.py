"""exec joins the container's cgroups by writing to the recorded directories (runc's EnterPid,
without the cgroups package), and falls back to the manager when one is gone."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Runtime, base_config


def _cgroups(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        out[controllers] = path
    return out


def _exec_sleeper(pyrt: Runtime, b: Path, cid: str, cfg: dict[str, object]) -> int:
    proc = dict(cfg["process"], args=["sleep", "30"])  # type: ignore[call-overload]
    pf = b / "process.json"
    pf.write_text(json.dumps(proc))
    pid_file = b / "exec.pid"
    p = pyrt("exec", "--detach", "--pid-file", str(pid_file), "--process", str(pf), cid)
    assert p.returncode == 0, p.stderr
    return int(pid_file.read_text())


def test_exec_lands_in_every_cgroup_of_the_container(pyrt: Runtime) -> None:
    cfg = base_config(["sleep", "100"])
    b = pyrt.bundle(cfg)
    cid = pyrt.new_id()
    pyrt("run", "-d", "--bundle", str(b), cid, check=True)
    init = int(pyrt.state(cid)["pid"])
    pid = _exec_sleeper(pyrt, b, cid, cfg)
    assert _cgroups(pid) == _cgroups(init)
    # a cgroup removed under the container: exec's manager recreates it and joins it
    state = json.loads(Path(pyrt.root, cid, "state.json").read_text())
    pids_dir = state["cgroup"]["paths"].get("pids")
    if pids_dir:
        mine = Path(pids_dir)
        for task in (mine / "cgroup.procs").read_text().split():
            Path(mine.parent, "cgroup.procs").write_text(task)  # out, so rmdir can work
        mine.rmdir()
        pid2 = _exec_sleeper(pyrt, b, cid, cfg)
        assert mine.is_dir() and str(pid2) in (mine / "cgroup.procs").read_text().split()
