"""Unit tests of issue 10's fixes that need no root: start's order of pidfd and fifo,
rlimit values, closing inherited descriptors, error wording."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from pyruntime import init
from pyruntime import state as st_mod
from pyruntime.container import Runtime
from pyruntime.errors import ContainerNotRunning, RuntimeErr
from pyruntime.syscalls.fake import FakeSyscalls

# --- start: the pidfd is taken before init is released (item 5) -----------------------


class _InitThatExitsAtOnce(FakeSyscalls):
    """init is the thread below: released by `start`'s open of the fifo, it writes its byte
    and "exits" (its pidfd, a pipe here, becomes readable) at once.  A pidfd asked for
    after the release finds it gone, as the kernel would."""

    def __init__(self, fifo: Path) -> None:
        super().__init__()
        self.released = threading.Event()
        self.exit_r, self.exit_w = os.pipe()
        self.thread = threading.Thread(target=self._init, args=(fifo,), daemon=True)
        self.thread.start()

    def _init(self, fifo: Path) -> None:
        fd = os.open(fifo, os.O_WRONLY)  # blocks until a reader opens
        self.released.set()
        os.write(fd, b"0")
        os.close(fd)
        os.write(self.exit_w, b"x")

    def pidfd_open(self, pid: int) -> int:
        self._record("pidfd_open", pid)
        if self.released.wait(0.3):
            raise ProcessLookupError(3, "No such process")
        return os.dup(self.exit_r)


def _created_container(root: Path) -> Path:
    cid = "c1"
    sdir = root / cid
    sdir.mkdir(parents=True)
    os.mkfifo(sdir / st_mod.FIFO)
    me = os.getpid()
    st = st_mod.State(id=cid, bundle="/b", rootfs="/b/rootfs", created="now", pid=me,
                      pid_start=st_mod.proc_start_time(me) or 0)
    st_mod.Store(root).save(st)
    return sdir / st_mod.FIFO


def test_start_succeeds_when_the_command_exits_at_once(tmp_path: Path) -> None:
    fifo = _created_container(tmp_path)
    fake = _InitThatExitsAtOnce(fifo)
    Runtime(tmp_path, sys=fake).start("c1")
    fake.thread.join(5)
    assert fake.names() == ["pidfd_open"] and not fifo.exists()


def test_await_fifo_prefers_the_byte_to_the_exit() -> None:
    data_r, data_w = os.pipe()
    exit_r, exit_w = os.pipe()
    os.set_blocking(data_r, False)
    os.write(exit_w, b"x")  # init exited ...
    os.write(data_w, b"0")  # ... after writing its byte
    Runtime._await_fifo(data_r, exit_r)
    os.close(data_w)
    with pytest.raises(RuntimeErr, match="container init exited before start"):
        Runtime._await_fifo(data_r, exit_r)  # no byte this time: init died first
    for fd in (data_r, exit_r, exit_w):
        os.close(fd)


def test_start_of_a_dead_init_is_not_running(tmp_path: Path) -> None:
    _created_container(tmp_path)
    fake = FakeSyscalls()
    fake.fail["pidfd_open"] = 3
    with pytest.raises(ContainerNotRunning):
        Runtime(tmp_path, sys=fake).start("c1")


# --- rlimits (item 2) ------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0), (1024, 1024), ((1 << 63) - 1, (1 << 63) - 1),
    ((1 << 64) - 1, -1),  # RLIM_INFINITY
    (1 << 63, -(1 << 63)),
])
def test_rlimit_value_is_the_unsigned_bit_pattern(value: int, expected: int) -> None:
    assert init.rlimit_value(value) == expected


# --- inherited descriptors (item 4) ----------------------------------------------------


def test_close_inherited_closes_only_what_exists(tmp_path: Path) -> None:
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    for fd in (r1, w1, r2, w2):
        os.set_inheritable(fd, True)
    first = min(r1, w1, r2, w2)
    keep = {w2}
    init.close_inherited(first, keep)
    for fd in (r1, w1, r2):
        with pytest.raises(OSError):
            os.fstat(fd)
    os.fstat(w2)
    os.close(w2)


def test_close_inherited_without_proc_closes_around_the_kept(tmp_path: Path) -> None:
    fds = [fd for _ in range(3) for fd in os.pipe()]
    first, kept = min(fds), sorted(fds)[2]
    init.close_inherited(first, {kept}, fd_dir=str(tmp_path / "no-such-dir"))
    assert [fd for fd in fds if _is_open(fd)] == [kept]
    os.close(kept)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


# --- create raced by delete --force (item 6) ------------------------------------------


def test_deleted_under_us(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    ino = d.stat().st_ino
    assert st_mod.deleted_under_us(str(d), ino, saved=False) == ""
    assert st_mod.deleted_under_us(str(d), ino, saved=True) == st_mod.DELETING  # no state.json
    (d / st_mod.STATE_FILE).write_text("{}")
    assert st_mod.deleted_under_us(str(d), ino, saved=True) == ""
    st_mod.mark_deleting(str(d))
    assert st_mod.deleted_under_us(str(d), ino, saved=True) == st_mod.DELETING
    pin = os.open(d, os.O_RDONLY)  # the old inode stays allocated: the new dir gets another
    try:
        st_mod.remove_state_dir(d)
        assert st_mod.deleted_under_us(str(d), ino, saved=True) == st_mod.GONE
        d.mkdir()  # another create's now
        assert st_mod.deleted_under_us(str(d), ino, saved=True) == st_mod.REPLACED
    finally:
        os.close(pin)


def test_remove_state_dir_unlinks_the_delete_mark_last(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "c"
    d.mkdir()
    for name in ("a", st_mod.DELETING_MARK, st_mod.STATE_FILE, "z"):
        (d / name).write_text("")
    order: list[str] = []
    real_unlink = os.unlink

    def unlink(path: str) -> None:
        order.append(os.path.basename(path))
        real_unlink(path)

    monkeypatch.setattr(os, "unlink", unlink)
    st_mod.remove_state_dir(d)
    assert order[-1] == st_mod.DELETING_MARK and sorted(order) == sorted(
        ["a", st_mod.DELETING_MARK, st_mod.STATE_FILE, "z"]) and not d.exists()


# --- errors name the file and the value (item 8) ----------------------------------------


def test_describe_an_oserror_names_its_file_not_its_class() -> None:
    from pyruntime.errors import describe

    assert describe(PermissionError(13, "Permission denied", "/proc/1/oom_score_adj")) == \
        "/proc/1/oom_score_adj: Permission denied"
    assert describe(FileNotFoundError(2, "No such file or directory", "/a", None, "/b")) == \
        "/a -> /b: No such file or directory"
    assert describe(ValueError("x")) == "internal error: ValueError: x"  # a bug stays visible


def test_oom_score_adj_failure_names_file_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyruntime import container

    def refuse(path: str, mode: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(RuntimeErr) as e:
        container._set_oom_score_adj(42, -998)
    assert str(e.value) == ("process.oomScoreAdj: failed to update /proc/42/oom_score_adj to -998: "
                            "Permission denied")


class _DeadChannel:
    def error(self, msg: str) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize(("exc", "ready", "printed"), [
    (ConnectionResetError(104, "Connection reset by peer"), True, ""),  # create went away
    (init.ChildError(init.sync.PEER_GONE), True, ""),
    (OSError(1, "Operation not permitted"), True,
     "pyruntime init: waiting for start: Operation not permitted\n"),
    # before READY create reads the channel; if it is gone, create failed and says why:
    # its stderr, which init still shares, keeps its one line
    (OSError(2, "No such file or directory"), False, ""),
])
def test_init_error_after_the_runtime_left(exc: BaseException, ready: bool, printed: str,
                                           capfd: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(init, "_ready", [ready])
    init._at("waiting for start")
    init._fail(_DeadChannel(), exc)  # type: ignore[arg-type]
    assert capfd.readouterr().err == printed


# --- labels (item 9) -------------------------------------------------------------------


@pytest.mark.parametrize(("doc", "field"), [
    ({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}, "process.selinuxLabel"),
    ({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}, "linux.mountLabel"),
    ({"process": {"selinuxLabel": "a"}, "linux": {"mountLabel": "b"}}, "process.selinuxLabel"),
])
def test_labels_without_selinux_are_both_config_errors(doc: dict[str, object], field: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from pyruntime import labels, validate
    from pyruntime.errors import ConfigError

    monkeypatch.setattr(labels, "SELINUXFS", "/nonexistent")
    with pytest.raises(ConfigError) as e:
        validate.check_selinux(doc, Path("/"))  # type: ignore[arg-type]
    assert str(e.value) == (f"{field}: selinux label is specified in config, "
                            "but selinux is disabled or not supported")
    validate.check_selinux({"process": {}, "linux": {"mountLabel": ""}}, Path("/"))


def test_mount_label_with_selinux_is_a_context_option() -> None:
    from pyruntime.labels import with_mount_labels

    label = "system_u:object_r:container_file_t:s0:c1,c2"
    mounts = [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
              {"destination": "/proc", "type": "proc", "source": "proc"},
              {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"]},
              {"destination": "/x", "type": "none", "source": "/srv", "options": ["bind"]},
              {"destination": "/dev/pts", "type": "devpts", "source": "devpts"}]
    doc = {"linux": {"mountLabel": label}, "mounts": mounts}
    out = with_mount_labels(doc)
    assert [m.get("options") for m in out["mounts"]] == [
        ["nosuid", f'context="{label}"'], None, ["rbind"], ["bind"], [f'context="{label}"']]
    assert doc["mounts"] is mounts and mounts[0]["options"] == ["nosuid"]  # state keeps the original
    assert with_mount_labels({"mounts": mounts}) == {"mounts": mounts}


def test_selinux_enabled_reads_selinuxfs(tmp_path: Path) -> None:
    from pyruntime.labels import selinux_enabled

    assert not selinux_enabled(str(tmp_path))
    (tmp_path / "enforce").write_text("1")
    assert selinux_enabled(str(tmp_path))


def test_no_fd_survives_exec_marks_only_real_numbers(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.set_inheritable(w, True)
    fake = tmp_path / "fd"
    fake.mkdir()
    for name in (str(w), "not-a-number", "1"):
        (fake / name).write_text("")
    init._no_fd_survives_exec(3, fd_dir=str(fake))  # a container's /proc may be anything
    assert not os.get_inheritable(w)
    os.close(r)
    os.close(w)
