"""A real single-node Slurm cluster (with accounting) for the workflow's Slurm tests.

Starts munged, a private MariaDB, slurmdbd, slurmctld and slurmd on this
machine, creates the cluster, an account and the current user, and stops
exactly the processes it started (by PID). The cluster is shaped like a small
real one, not enlarged to fit the workflow: one node of 2 CPUs and 21 GB
(smaller than a real GPU teacher's request) with two fake L40S GPUs, memory a
consumable resource, accounting enforced with an account name of its own, and
separate CPU and GPU partitions (both on this node). Needs
root and Debian's slurm-wlm, slurmdbd, munge and mariadb-server (`make
slurm-deps` installs them).

    python tests/slurm_cluster.py start /tmp/slurm     # prints `export SLURM_CONF=...`
    python tests/slurm_cluster.py stop /tmp/slurm
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sacctmgr")
CPU_PARTITION = "cpu-small"
GPU_PARTITION = "gpu-l40s"
ACCOUNT = "percept-lab"
GPUS = 2
NODE_CPUS = 2
NODE_MEMORY_MB = 21000  # RealMemory a little below the machine's 24 GB, or the node drains
DB_PORT = 3307

SLURM_CONF = """\
ClusterName=distillery
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
MinJobAge=600
KillWait=30
NodeName=localhost CPUs={cpus} RealMemory={memory} Gres=gpu:l40s:{gpus} State=UNKNOWN
PartitionName={cpu_partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName={gpu_partition} Nodes=localhost MaxTime=INFINITE State=UP
"""

SLURMDBD_CONF = """\
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={port}
StorageUser=root
StorageLoc=slurm_acct_db
PidFile={d}/slurmdbd.pid
LogFile={d}/slurmdbd.log
"""


def available() -> str | None:
    """None when a cluster can be started here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "the local Slurm cluster needs root"
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    return f"not installed: {', '.join(missing)} (run `make slurm-deps` as root)" if missing else None


def _write_configs(d: Path) -> Path:
    for sub in ("state", "spool", "db", "munge"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "slurm.conf"
    conf.write_text(SLURM_CONF.format(d=d, cpus=NODE_CPUS, memory=NODE_MEMORY_MB, gpus=GPUS,
                                      cpu_partition=CPU_PARTITION, gpu_partition=GPU_PARTITION))
    gres = "\n".join(f"NodeName=localhost Name=gpu Type=l40s File=/dev/fakegpu{i}" for i in range(GPUS))
    (d / "gres.conf").write_text(gres + "\n")
    dbd = d / "slurmdbd.conf"
    dbd.write_text(SLURMDBD_CONF.format(d=d, port=DB_PORT))
    dbd.chmod(0o600)
    return conf


SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


def _alive(pid: int, name: str) -> bool:
    """Whether `pid` is still the daemon `name` (a PID may be reused by another program)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z" and name in cmdline


def _stale_test_conf(target: Path) -> bool:
    """A test cluster's config whose daemons are gone: its run was killed before `stop`."""
    ours = f"StateSaveLocation={target.parent}/state"
    if not target.is_file() or ours not in target.read_text():
        return False
    pids_file = target.parent / "pids.json"
    pids = json.loads(pids_file.read_text()) if pids_file.exists() else {}
    return not any(_alive(pid, name) for name, pid in pids.items())


def _link_system_conf(conf: Path) -> None:
    """Point /etc/slurm/slurm.conf at our config.

    The Slurm executor's job step strips SLURM_CONF before its nested srun,
    so jobs only find a config at the default path. A link left by a test
    cluster that is no longer running (its folder gone, or its daemons dead
    because the run was killed) is replaced; a live cluster's config, or any
    config that is not a test cluster's, never is.
    """
    if SYSTEM_CONF.is_symlink():
        target = SYSTEM_CONF.resolve()
        if target == conf.resolve():
            return
        if not target.exists() or _stale_test_conf(target):
            SYSTEM_CONF.unlink()
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        raise RuntimeError(
            f"{SYSTEM_CONF} exists and is not this test cluster's ({SYSTEM_CONF.resolve()}); refusing to "
            f"replace it. If it is another test cluster's, stop it: python tests/slurm_cluster.py stop "
            f"{SYSTEM_CONF.resolve().parent}")
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.symlink_to(conf)


def _unlink_system_conf(d: Path) -> None:
    if SYSTEM_CONF.is_symlink() and Path(os.readlink(SYSTEM_CONF)) == d / "slurm.conf":
        SYSTEM_CONF.unlink()


def _fake_gpus() -> None:
    """GRES entries need existing character devices, or the node drains."""
    for i in range(GPUS):
        dev = Path(f"/dev/fakegpu{i}")
        if not dev.exists():
            os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))


def _spawn(d: Path, name: str, cmd: list[str], env: dict) -> int:
    log = open(d / f"{name}.out", "ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    pids = json.loads((d / "pids.json").read_text()) if (d / "pids.json").exists() else {}
    pids[name] = proc.pid
    (d / "pids.json").write_text(json.dumps(pids))
    return proc.pid


def _wait(what: str, check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise RuntimeError(f"local Slurm: timed out waiting for {what}")


def _ok(cmd: list[str], env: dict) -> bool:
    return subprocess.run(cmd, env=env, capture_output=True).returncode == 0


def _start_munge(d: Path, env: dict) -> None:
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["runuser", "-u", "munge", "--", "mungekey", "--create"], check=True)
    if not _ok(["munge", "-n"], env):
        _spawn(d, "munged", ["runuser", "-u", "munge", "--", "munged", "--foreground"], env)
        _wait("munged", lambda: _ok(["munge", "-n"], env))


def _start_mariadb(d: Path, env: dict) -> None:
    data = d / "db"
    if not (data / "mysql").exists():
        subprocess.run(["mariadb-install-db", f"--datadir={data}", "--user=root", "--skip-test-db",
                        "--auth-root-authentication-method=normal"], check=True, capture_output=True, env=env)
    _spawn(d, "mariadbd", ["mariadbd", f"--datadir={data}", "--user=root", "--bind-address=127.0.0.1",
                           f"--port={DB_PORT}", f"--socket={d}/mysqld.sock", "--skip-grant-tables",
                           f"--pid-file={d}/mysqld.pid", "--skip-log-error"], env)
    _wait("MariaDB", lambda: _ok(["mariadb-admin", f"--socket={d}/mysqld.sock", "ping"], env))


def start(d: Path) -> dict:
    """Start every daemon; return the environment clients need (SLURM_CONF)."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    d.mkdir(parents=True, exist_ok=True)
    conf = _write_configs(d)
    env = dict(os.environ, SLURM_CONF=str(conf))
    _link_system_conf(conf)
    _fake_gpus()
    _start_munge(d, env)
    _start_mariadb(d, env)
    _spawn(d, "slurmdbd", ["slurmdbd", "-D"], env)
    _wait("slurmdbd", lambda: _ok(["sacctmgr", "-n", "list", "cluster"], env))
    user = getpass.getuser()
    for args in (["add", "cluster", "distillery"], ["add", "account", ACCOUNT, "Cluster=distillery"],
                 ["add", "user", user, f"Account={ACCOUNT}", "Cluster=distillery"]):
        subprocess.run(["sacctmgr", "-i", *args], env=env, capture_output=True)
    # Started under their plain names: libslurm decides from argv[0] whether it is the controller.
    _spawn(d, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)], env)
    _wait("slurmctld", lambda: _ok(["scontrol", "ping"], env))
    _spawn(d, "slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(conf)], env)
    _wait("an idle node", lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], env=env,
                                                           capture_output=True, text=True).stdout)
    return {"SLURM_CONF": str(conf), "cpu_partition": CPU_PARTITION, "gpu_partition": GPU_PARTITION,
            "account": ACCOUNT}


def stop(d: Path) -> None:
    """Stop the daemons this folder's cluster started, newest first, by recorded PID."""
    pids_file = d / "pids.json"
    if not pids_file.exists():
        return
    pids = json.loads(pids_file.read_text())
    for name in reversed(list(pids)):
        try:
            os.killpg(pids[name], signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pids[name], 0)
            except ProcessLookupError:
                break
            if Path(f"/proc/{pids[name]}/stat").exists() and " Z " in Path(f"/proc/{pids[name]}/stat").read_text():
                break  # a zombie: exited, not yet reaped by its parent
            time.sleep(0.2)
    pids_file.unlink()
    _unlink_system_conf(d)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    folder = Path(sys.argv[2]).resolve()
    if sys.argv[1] == "start":
        info = start(folder)
        print(f"export SLURM_CONF={info['SLURM_CONF']}  # partitions {info['cpu_partition']} (CPU), "
              f"{info['gpu_partition']} (GPU), account {info['account']}")
    else:
        stop(folder)
