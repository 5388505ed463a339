"""Known-good config.json documents for tests.

`default_config()` is what `runc spec` (runc 1.1.5) writes, as a dict; `full_config()` adds
one of nearly every Linux field pyruntime's schema knows, with values that also pass the
semantic checks on a kernel with user, cgroup and time namespaces.  Each call returns a
fresh document, so tests may mutate it.
"""

from __future__ import annotations

from typing import Any

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_config() -> dict[str, Any]:
    """The output of `runc spec` (runc 1.1.5, spec 1.0.2-dev)."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(_CAPS),
                "effective": list(_CAPS),
                "permitted": list(_CAPS),
                "ambient": list(_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }


def full_config() -> dict[str, Any]:
    """default_config() plus nearly every optional Linux field, all valid together."""
    doc = default_config()
    doc["ociVersion"] = "1.2.0"
    doc["domainname"] = "example.org"
    doc["annotations"] = {"org.example.key": "value", "io.kubernetes.cri.sandbox-id": "abc"}
    proc = doc["process"]
    proc.update({
        "terminal": False,
        "consoleSize": {"height": 24, "width": 80},
        "user": {"uid": 0, "gid": 0, "umask": 18, "additionalGids": [5, 10]},
        "oomScoreAdj": 100,
        "selinuxLabel": "",
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        "scheduler": {"policy": "SCHED_OTHER", "nice": 5},
        "execCPUAffinity": {"initial": "0", "final": "0-1"},
    })
    proc["capabilities"]["inheritable"] = ["CAP_KILL"]
    proc["rlimits"].append({"type": "RLIMIT_CORE", "hard": 0, "soft": 0})
    doc["mounts"].append({"destination": "/data", "type": "bind", "source": "/tmp",
                          "options": ["rbind", "ro"],
                          "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                          "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]})
    hook = {"path": "/usr/bin/true", "args": ["true", "x"], "env": ["A=b"], "timeout": 5}
    doc["hooks"] = {stage: [dict(hook)] for stage in (
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")}
    lx = doc["linux"]
    lx["namespaces"] += [{"type": "user"}, {"type": "cgroup"}, {"type": "time"}]
    lx["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    lx["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    lx["timeOffsets"] = {"monotonic": {"secs": 3600, "nanosecs": 0},
                         "boottime": {"secs": -60, "nanosecs": 500}}
    lx["devices"] = [
        {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438,
         "uid": 0, "gid": 0},
        {"type": "p", "path": "/dev/myfifo"},
    ]
    lx["netDevices"] = {"eth1": {"name": "net1"}}
    lx["cgroupsPath"] = "/pyruntime/test"
    lx["resources"].update({
        "memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824,
                   "kernel": -1, "kernelTCP": -1, "swappiness": 60, "disableOOMKiller": False,
                   "useHierarchy": True, "checkBeforeUpdate": True},
        "cpu": {"shares": 1024, "quota": 50000, "burst": 10000, "period": 100000,
                "realtimeRuntime": 0, "realtimePeriod": 0, "cpus": "0-1", "mems": "0",
                "idle": 0},
        "pids": {"limit": 100},
        "blockIO": {
            "weight": 500, "leafWeight": 300,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 100}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
        },
        "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
        "unified": {"io.weight": "default 100"},
    })
    lx["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"})
    lx["intelRdt"] = {"closID": "guaranteed_group", "l3CacheSchema": "L3:0=7f0;1=1f",
                      "memBwSchema": "MB:0=20;1=70"}
    lx["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "68719476736",
                    "fs.mqueue.msg_max": "20", "kernel.domainname": "example.org"}
    lx["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "listenerPath": "/run/seccomp-agent.sock",
        "listenerMetadata": "meta",
        "syscalls": [
            {"names": ["read", "write", "exit_group", "no_such_syscall_xyz"],
             "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0,
                       "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        ],
    }
    lx["rootfsPropagation"] = "private"
    lx["mountLabel"] = ""
    lx["personality"] = {"domain": "LINUX", "flags": []}
    lx["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": []}
    return doc
