"""A cluster of "hosts" on one machine, for multi-host data-parallel tests (test_multihost.py) and the veth benchmark
(bench/multihost_bench.py): each host is a Linux network namespace with its own UTS (host) name, joined to the others
by veth links through a bridge in a switch namespace. Traffic stays inside those namespaces. Open MPI's mpirun runs in
host 0 and starts its daemons on the other hosts through an rsh agent that is `ip netns exec` (instead of ssh), so MPI
sees separate nodes talking TCP over the links, and a host can be cut off (`ip link set eth0 down`), killed (every
process of its namespace) or one of its ranks frozen.

Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN), iproute2, util-linux `unshare` and Open MPI. `Cluster.available()` says
why not when it cannot work. Cleanup on every exit path: `close()` (also from the context manager, atexit and
SIGTERM/SIGINT) kills every process left in the namespaces, deletes them and their /etc/netns/<name> folders; a
later Cluster removes what a crashed run (a dead owner pid in the name) left behind.

Layout: namespaces `sftmh<pid>s` (switch, bridge br0) and `sftmh<pid>h<i>` (host i, interface eth0 with 10.213.0.<i+1>/24,
host name node<i>); /etc/netns/<ns>/hosts resolves node0..node<n-1> inside the namespaces (ip netns exec bind-mounts it).
"""
import atexit
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

PREFIX = "sftmh"
SUBNET = "10.213.0"


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _netns_list():
    res = _ip("netns", "list", check=False)
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]


def _kill_namespace_processes(ns):
    """SIGKILL every process in the namespace (stopped ones included: SIGKILL ends a stopped process)."""
    for _ in range(5):
        pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split() if p.isdigit()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def _remove_namespace(ns):
    _kill_namespace_processes(ns)
    _ip("netns", "del", ns, check=False)
    shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)


def remove_stale():
    """Namespaces of earlier runs whose owner process is gone (a run killed before it could clean up)."""
    for ns in _netns_list():
        if not ns.startswith(PREFIX):
            continue
        m = re.match(PREFIX + r"(\d+)", ns)
        if m and not _alive(int(m.group(1))):
            _remove_namespace(ns)


class Cluster:
    @staticmethod
    def available():
        """None when namespaces can be made here, else the reason (for pytest.skip)."""
        if os.geteuid() != 0:
            return "needs root (network namespaces)"
        for tool in ("ip", "unshare", "mpirun"):
            if shutil.which(tool) is None:
                return f"{tool} not installed"
        probe = f"{PREFIX}{os.getpid()}probe"
        res = _ip("netns", "add", probe, check=False)
        if res.returncode != 0:
            return f"cannot create a network namespace: {res.stderr.strip()}"
        _ip("netns", "del", probe, check=False)
        return None

    def __init__(self, hosts=3):
        remove_stale()
        self.n = hosts
        self.tag = f"{PREFIX}{os.getpid()}"
        self.switch = self.tag + "s"
        self.ns = [f"{self.tag}h{i}" for i in range(hosts)]
        self.names = [f"node{i}" for i in range(hosts)]
        self.ips = [f"{SUBNET}.{i + 1}" for i in range(hosts)]
        self.tmp = tempfile.mkdtemp(prefix="sft-netns-")
        self.closed = False
        atexit.register(self.close)
        self._old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        for s in self._old:
            signal.signal(s, self._on_signal)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _on_signal(self, signum, frame):
        self.close()
        old = self._old.get(signum)
        if callable(old):
            old(signum, frame)
        raise SystemExit(128 + signum)

    def _build(self):
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "set", "lo", "up")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        hosts = "127.0.0.1 localhost\n" + "".join(f"{ip} {name}\n" for ip, name in zip(self.ips, self.names))
        for i, ns in enumerate(self.ns):
            _ip("netns", "add", ns)
            # The veth pair is made inside the switch namespace with its peer moved straight into the host's: nothing
            # appears in the machine's own namespace.
            _ip("-n", self.switch, "link", "add", f"h{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.switch, "link", "set", f"h{i}", "master", "br0")
            _ip("-n", self.switch, "link", "set", f"h{i}", "up")
            _ip("-n", ns, "addr", "add", f"{self.ips[i]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            os.makedirs(os.path.join("/etc/netns", ns), exist_ok=True)
            with open(os.path.join("/etc/netns", ns, "hosts"), "w") as f:
                f.write(hosts)
        self.agent = os.path.join(self.tmp, "netns-rsh-agent")
        cases = "".join(f"  {name}) ns={ns} ;;\n" for name, ns in zip(self.names, self.ns))
        with open(self.agent, "w") as f:
            f.write("#!/bin/sh\n"
                    "# Open MPI rsh agent: '<agent> <host> <command line>' runs the command line in that host's network\n"
                    "# namespace, with its own host name (what ssh to another machine would do).\n"
                    "host=$1; shift\n"
                    "case \"$host\" in\n" + cases +
                    "  *) echo \"netns-rsh-agent: unknown host $host\" >&2; exit 1 ;;\n"
                    "esac\n"
                    "exec ip netns exec \"$ns\" unshare --uts -- /bin/sh -c \"hostname $host; $*\"\n")
        os.chmod(self.agent, 0o755)

    def close(self):
        if self.closed:
            return
        self.closed = True
        for ns in self.ns + [self.switch]:
            _remove_namespace(ns)
        shutil.rmtree(self.tmp, ignore_errors=True)
        for s, old in self._old.items():
            try:
                signal.signal(s, old)
            except (TypeError, ValueError):
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- running jobs
    def mpirun_argv(self, ranks_per_host, command, hosts=None, mca=(), keepalive=True):
        """argv of an mpirun started in host 0 that runs `command` with ranks_per_host ranks on each of `hosts`
        (default: all). TCP only (no shared memory between hosts), on the cluster's subnet only. The out-of-band
        keepalive lets mpirun notice a host that vanished from the network within seconds (Open MPI's default is
        minutes); documented for real clusters in docs/arch/parallel.md."""
        hosts = list(range(self.n)) if hosts is None else hosts
        hl = ",".join(f"{self.names[h]}:{ranks_per_host}" for h in hosts)
        mpirun = ["mpirun", "--allow-run-as-root", "-H", hl, "-np", str(ranks_per_host * len(hosts)),
                  "--bind-to", "none", "--mca", "plm_rsh_agent", self.agent, "--mca", "plm_rsh_no_tree_spawn", "1",
                  "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", f"{SUBNET}.0/24",
                  "--mca", "oob_tcp_if_include", f"{SUBNET}.0/24", *mca]
        if keepalive:
            mpirun += ["--mca", "oob_tcp_keepalive_time", "2", "--mca", "oob_tcp_keepalive_intvl", "1",
                       "--mca", "oob_tcp_keepalive_probes", "3"]
        mpirun += command
        return self.in_host(hosts[0], mpirun)

    def in_host(self, i, argv):
        """argv run inside host i's namespace with its host name."""
        return ["ip", "netns", "exec", self.ns[i], "unshare", "--uts", "--", "/bin/sh", "-c",
                f"hostname {self.names[i]}; exec {shlex.join(argv)}"]

    def env(self, **extra):
        return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
                    **extra)

    # ---- faults
    def pids(self, i, comm=None):
        out = []
        for p in _ip("netns", "pids", self.ns[i], check=False).stdout.split():
            try:
                name = open(f"/proc/{p}/comm").read().strip()
            except OSError:
                continue
            if comm is None or name == comm:
                out.append(int(p))
        return out

    def cut_link(self, i):
        _ip("-n", self.ns[i], "link", "set", "eth0", "down")

    def restore_link(self, i):
        _ip("-n", self.ns[i], "link", "set", "eth0", "up")

    def kill_host(self, i):
        """kill -9 every process of host i (its MPI daemon and ranks): a machine that crashed."""
        _kill_namespace_processes(self.ns[i])

    def shape_links(self, rate="10gbit", delay="50us"):
        """Every host's link limited like a real network, on the host side of each veth: tc netem (rate and delay)
        where the kernel has it, else tbf (rate only). Returns what was applied."""
        applied = None
        for ns in self.ns:
            tc = ["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root"]
            if applied in (None, "netem") and subprocess.run(
                    tc + ["netem", "rate", rate, "delay", delay], capture_output=True).returncode == 0:
                applied = "netem"
                continue
            subprocess.run(tc + ["tbf", "rate", rate, "burst", "4mb", "latency", "50ms"], check=True,
                           capture_output=True)
            applied = "tbf"
        return f"netem rate {rate} delay {delay}" if applied == "netem" else f"tbf rate {rate} (no netem: no delay)"
