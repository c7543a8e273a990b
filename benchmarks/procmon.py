"""Run a command and measure wall time, CPU time and the memory of its whole process tree.

The command runs under ``/usr/bin/time -v`` (its "Maximum resident set size" is the exact peak of
the largest single process in the tree that was waited for) while a thread polls ``/proc``
through psutil every ``interval`` seconds for every process of the tree: the peak RSS of the
program's own (root) process, the peak of each other process (workers, nannies), and the peak of
the tree's summed RSS and summed PSS (PSS shares pages between forked processes fairly, so it
does not double-count copy-on-write memory like the RSS sum does).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class ProcPeak:
    pid: int
    depth: int  # 0 = the program itself, 1 = its children, ...
    name: str
    rss: int = 0  # bytes
    pss: int = 0
    cpu_s: float = 0.0  # user + sys CPU seconds, as last seen (children it reaped included)


@dataclass
class RunResult:
    argv: list[str]
    rc: int
    wall_s: float
    user_s: float = 0.0
    sys_s: float = 0.0
    maxrss_time_kb: int = 0  # /usr/bin/time -v
    tree_rss_peak: int = 0  # bytes, peak of the summed RSS over the tree
    tree_pss_peak: int = 0
    procs: dict[int, ProcPeak] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    machine_busy_s: float = 0.0  # CPU seconds used by the whole machine during the run
    monitor_cpu_s: float = 0.0  # CPU seconds of the polling thread itself
    load_before: float = 0.0  # 1-minute load average when the run started

    @property
    def others_cpu_s(self) -> float:
        """CPU seconds other programs took during the run (a measure of interference)."""
        return max(self.machine_busy_s - self.user_s - self.sys_s - self.monitor_cpu_s, 0.0)

    @property
    def root(self) -> ProcPeak | None:
        roots = [p for p in self.procs.values() if p.depth == 0]
        return roots[0] if roots else None

    @property
    def parent_rss_peak(self) -> int:
        r = self.root
        return r.rss if r else 0

    @property
    def parent_cpu_s(self) -> float:
        """CPU seconds of the program's own process (as last polled)."""
        r = self.root
        return r.cpu_s if r else 0.0

    @property
    def worker_rss_peak(self) -> int:
        """Largest peak RSS of any process but the program itself (0 when it had no children)."""
        return max((p.rss for p in self.procs.values() if p.depth > 0), default=0)

    def as_dict(self) -> dict:
        return dict(
            argv=self.argv,
            rc=self.rc,
            wall_s=self.wall_s,
            user_s=self.user_s,
            sys_s=self.sys_s,
            maxrss_time_kb=self.maxrss_time_kb,
            parent_rss_peak=self.parent_rss_peak,
            worker_rss_peak=self.worker_rss_peak,
            parent_cpu_s=self.parent_cpu_s,
            tree_rss_peak=self.tree_rss_peak,
            tree_pss_peak=self.tree_pss_peak,
            others_cpu_s=self.others_cpu_s,
            monitor_cpu_s=self.monitor_cpu_s,
            load_before=self.load_before,
            procs=[vars(p) for p in self.procs.values()],
        )


def _short_name(p: psutil.Process) -> str:
    try:
        cmd = p.cmdline()
    except (psutil.Error, OSError):
        return "?"
    text = " ".join(cmd)
    if "multiprocessing" in text or "spawn_main" in text or "forkserver" in text:
        return "python (multiprocessing child)"
    return " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd[:3]))[:80]


def _depths(root: psutil.Process) -> dict[int, tuple[psutil.Process, int]]:
    """Every process of the tree with its depth below ``root``."""
    out = {root.pid: (root, 0)}
    try:
        children = root.children(recursive=True)
    except psutil.Error:
        return out
    parent = {}
    for c in children:
        try:
            parent[c.pid] = c.ppid()
        except psutil.Error:
            parent[c.pid] = root.pid
    for c in children:
        depth, pid = 0, c.pid
        while pid != root.pid and pid in parent and depth < 64:
            depth += 1
            pid = parent[pid]
        out[c.pid] = (c, depth)
    return out


def cpu_times() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    busy = sum(fields[:8]) - idle if len(fields) >= 8 else sum(fields) - idle
    return busy / tick, idle / tick


def wait_for_idle(threshold: float = 0.15, sample_s: float = 1.0, max_wait_s: float = 300.0) -> float:
    """Wait until the machine's busy fraction over ``sample_s`` is below ``threshold`` of all cores
    (at most ``max_wait_s``); returns the seconds waited. Other programs on a 2-core machine would
    otherwise distort the timings."""
    t0 = time.monotonic()
    while True:
        b0, i0 = cpu_times()
        time.sleep(sample_s)
        b1, i1 = cpu_times()
        total = (b1 - b0) + (i1 - i0)
        if total <= 0 or (b1 - b0) / total < threshold or time.monotonic() - t0 > max_wait_s:
            return time.monotonic() - t0


def source_hash(package: Path | None = None) -> str:
    """Short SHA-1 of findspots' source files (the package is edited while benchmarks run)."""
    import hashlib

    package = package or Path(__file__).resolve().parent.parent / "findspots"
    h = hashlib.sha1()
    for f in sorted(package.rglob("*")):
        if f.suffix in (".py", ".phil") and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(package)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:10]


def _parse_time_v(text: str) -> dict[str, float]:
    out = {}
    for key, pat in (
        ("user_s", r"User time \(seconds\): ([\d.]+)"),
        ("sys_s", r"System time \(seconds\): ([\d.]+)"),
        ("maxrss_time_kb", r"Maximum resident set size \(kbytes\): (\d+)"),
    ):
        m = re.search(pat, text)
        if m:
            out[key] = float(m.group(1))
    return out


def run_measured(
    argv: list[str],
    cwd: str | Path | None = None,
    env: dict | None = None,
    interval: float = 0.1,
    pss_every: int = 10,
    tree_every: int = 5,
    timeout: float | None = None,
    trace: list | None = None,
) -> RunResult:
    """Run ``argv`` (under /usr/bin/time -v) and measure it; stdout/stderr are captured.

    ``trace``, when given, receives one ``(seconds, root RSS, largest other RSS)`` tuple per poll."""
    cwd = Path(cwd) if cwd else Path.cwd()
    time_file = cwd / f".time-{os.getpid()}-{time.monotonic_ns()}.txt"
    full = ["/usr/bin/time", "-v", "-o", str(time_file), *argv]
    out_f = open(cwd / ".stdout.txt", "w+")
    err_f = open(cwd / ".stderr.txt", "w+")
    load = os.getloadavg()[0]
    busy0, _ = cpu_times()
    t0 = time.perf_counter()
    proc = psutil.Popen(full, cwd=str(cwd), env=env, stdout=out_f, stderr=err_f)
    procs: dict[int, ProcPeak] = {}
    peaks = {"rss": 0, "pss": 0, "monitor_cpu": 0.0}
    stop = threading.Event()

    def poll() -> None:
        # Cheap on purpose (it shares the cores with what it measures): the tree is re-listed every
        # ``tree_every`` polls, PSS (smaps_rollup) read every ``pss_every`` polls; its own CPU is kept.
        tick = 0
        tree: dict = {}
        while not stop.is_set():
            if tick % tree_every == 0 or not tree:
                try:
                    kids = proc.children()
                except psutil.Error:
                    kids = []
                tree = _depths(kids[0]) if kids else {}  # kids[0]: the program, child of /usr/bin/time
            if tree:
                rss_sum = pss_sum = 0
                root_rss = other_rss = 0
                want_pss = tick % pss_every == 0
                for pid, (p, depth) in tree.items():
                    try:
                        rss = p.memory_info().rss
                        ct = p.cpu_times()
                        cpu = ct.user + ct.system
                        pss = p.memory_full_info().pss if want_pss else 0
                    except (psutil.Error, OSError):
                        continue
                    rec = procs.get(pid)
                    if rec is None:
                        rec = procs[pid] = ProcPeak(pid, depth, _short_name(p))
                    rec.rss = max(rec.rss, rss)
                    rec.cpu_s = max(rec.cpu_s, cpu)
                    rec.pss = max(rec.pss, pss)
                    rss_sum += rss
                    pss_sum += pss
                    if depth == 0:
                        root_rss = rss
                    else:
                        other_rss = max(other_rss, rss)
                peaks["rss"] = max(peaks["rss"], rss_sum)
                if trace is not None:
                    trace.append((time.perf_counter() - t0, root_rss, other_rss))
                if want_pss:
                    peaks["pss"] = max(peaks["pss"], pss_sum)
            tick += 1
            peaks["monitor_cpu"] = time.thread_time()
            stop.wait(interval)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        wall = time.perf_counter() - t0
        busy1, _ = cpu_times()
        stop.set()
        thread.join()
    out_f.seek(0)
    err_f.seek(0)
    result = RunResult(
        argv=list(argv),
        rc=rc,
        wall_s=wall,
        procs=procs,
        tree_rss_peak=peaks["rss"],
        tree_pss_peak=peaks["pss"],
        stdout=out_f.read(),
        stderr=err_f.read(),
        machine_busy_s=busy1 - busy0,
        load_before=load,
        monitor_cpu_s=peaks["monitor_cpu"],
    )
    out_f.close()
    err_f.close()
    for f in (cwd / ".stdout.txt", cwd / ".stderr.txt"):
        f.unlink(missing_ok=True)
    if time_file.exists():
        parsed = _parse_time_v(time_file.read_text())
        time_file.unlink()
        result.user_s = parsed.get("user_s", 0.0)
        result.sys_s = parsed.get("sys_s", 0.0)
        result.maxrss_time_kb = int(parsed.get("maxrss_time_kb", 0))
    return result
