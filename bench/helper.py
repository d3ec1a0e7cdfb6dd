#!/usr/bin/python3
"""Small stdlib-only helper for bench/run.sh.

Sub-commands (all print to stdout, errors to stderr, non-zero exit on failure):
  freeport [USED...]              a port that is free now, outside the ephemeral range, not in USED
  waitlisten PORT TIMEOUT [PID..] wait until something listens on 127.0.0.1:PORT (read from
                                  /proc/net/tcp, no test connection is made); fail early if a PID dies
  cpu PID...                      utime+stime of the PIDs in seconds (sum, all threads)
  rss PID...                      VmRSS of the PIDs in KiB (sum)
  iperf FILE                      "<bits_per_second> <bytes>" from end.sum_received of `iperf3 -J`
  wrk FILE                        "<requests_per_sec> <non2xx_or_socket_errors>" from wrk's text output
  busy SECONDS                    % of all CPUs busy during SECONDS (load from other processes)
  snap FILE SHELL_PID             CPU ticks of all processes not started by SHELL_PID, for `foreign`
  foreign FILE0 FILE1             % of the CPUs those processes used between two snaps
  sink PORT                       echo server that holds every connection open (prints READY)
  hold PORT N TIMEOUT             open N connections, check an echo on each, print "READY <n>",
                                  then keep them open until killed or stdin closes
  report TSV JSON META_JSON       print the results table and write the JSON file
"""
import asyncio
import json
import os
import random
import re
import signal
import statistics
import socket
import sys
import threading
import time


def die(msg, code=1):
    print("helper: " + msg, file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------- ports
def listening_ports():
    ports = set()
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A":  # TCP_LISTEN
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def cmd_freeport(args):
    used = {int(a) for a in args}
    used |= listening_ports()
    rnd = random.Random(os.getpid() ^ int(time.time() * 1e6))
    for _ in range(2000):
        # Below the ephemeral range (32768-60999 by default) so that the many short-lived
        # client connections of wrk/iperf3 can never grab it between pick and bind.
        p = rnd.randint(20000, 32000)
        if p in used:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        print(p)
        return
    die("no free port found")


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st not in ("Z", "X")
    except OSError:
        return False


def cmd_waitlisten(args):
    port, timeout = int(args[0]), float(args[1])
    pids = [int(p) for p in args[2:]]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if port in listening_ports():
            return
        for p in pids:
            if not pid_alive(p):
                die("process %d exited before port %d was listening" % (p, port))
        time.sleep(0.05)
    die("nothing listening on port %d after %.0f s" % (port, timeout))


# ---------------------------------------------------------------- /proc
def cmd_cpu(args):
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    for a in args:
        try:
            with open("/proc/%s/stat" % a) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            die("process %s is gone (cpu)" % a)
        # fields[0] is field 3 (state); utime = field 14, stime = field 15
        total += int(fields[11]) + int(fields[12])
    print("%.4f" % (total / tck))


def status_kib(pid, key):
    """A "<key>: N kB" line of /proc/PID/status (VmRSS, VmHWM ...), None if gone or absent."""
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_hwm(pid):
    """Resets VmHWM to the current RSS (Linux >= 4.0: 5 to clear_refs); False if refused."""
    try:
        with open("/proc/%s/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Sampler:
    """VmRSS of some pids every 50 ms in a thread: the peak where VmHWM cannot be reset."""

    def __init__(self, pids):
        self.pids, self.peak, self._stop = pids, {p: 0 for p in pids}, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for p in self.pids:
                v = status_kib(p, "VmRSS")
                if v:
                    self.peak[p] = max(self.peak[p], v)
            self._stop.wait(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(2)


def cmd_rss(args):
    total = 0
    for a in args:
        v = status_kib(a, "VmRSS")
        if v is None:
            die("process %s is gone (rss)" % a)
        total += v
    print(total)


def _cpu_totals():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v[:8]), idle


def cmd_busy(args):
    """Percentage of all CPUs that was busy during the next ARGS[0] seconds (others' load)."""
    t0, i0 = _cpu_totals()
    time.sleep(float(args[0]))
    t1, i1 = _cpu_totals()
    dt = t1 - t0
    print("%.1f" % (100.0 * (dt - (i1 - i0)) / dt if dt > 0 else 0.0))


def _proc_ticks(pid, children=False):
    try:
        with open("/proc/%s/stat" % pid) as f:
            x = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    t = int(x[11]) + int(x[12])
    if children:
        t += int(x[13]) + int(x[14])
    return t


def _all_procs():
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                x = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # ppid, start time, own ticks, reaped children's ticks
        procs[int(d)] = (int(x[1]), int(x[19]), int(x[11]) + int(x[12]), int(x[13]) + int(x[14]))
    return procs


def cmd_snap(args):
    """Write to ARGS[0] the CPU ticks of every process that is neither the shell ARGS[1] nor one of
    its descendants nor a kernel thread; `foreign` compares two such files."""
    procs = _all_procs()
    ours = {int(args[1]), 2}  # the shell and kthreadd: their descendants are skipped
    children = {}
    for pid, p in procs.items():
        children.setdefault(p[0], []).append(pid)
    stack = list(ours)
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in ours:
                ours.add(c)
                stack.append(c)
    other = {str(pid): p[1:] for pid, p in procs.items() if pid not in ours}
    with open(args[0], "w") as f:
        json.dump({"t": time.monotonic(), "procs": other}, f)


def cmd_foreign(args):
    """% of the machine's CPU capacity used between two snaps by processes that are not ours
    (a process that existed in both counts its growth incl. reaped children; a new one all of it)."""
    with open(args[0]) as f:
        s0 = json.load(f)
    with open(args[1]) as f:
        s1 = json.load(f)
    ticks = 0
    for pid, (start, own, ch) in s1["procs"].items():
        old = s0["procs"].get(pid)
        if old and old[0] == start:
            ticks += max(0, own + ch - old[1] - old[2])
        else:
            ticks += own + ch
    # A process that ended in between hands all its time (also from before the first snap) to its
    # parent's children-time: take out the part that was already counted in the first snap.
    for pid, (start, own, ch) in s0["procs"].items():
        new = s1["procs"].get(pid)
        if not new or new[0] != start:
            ticks -= own + ch
    ticks = max(0, ticks)
    cap = (s1["t"] - s0["t"]) * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
    print("%.1f" % (min(100.0, 100.0 * ticks / cap) if cap > 0 else 0.0))


# ---------------------------------------------------------------- tool output
def cmd_iperf(args):
    try:
        with open(args[0]) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        die("cannot parse iperf3 JSON: %s" % e)
    if data.get("error"):
        die("iperf3 error: %s" % data["error"])
    try:
        s = data["end"]["sum_received"]
        print("%.0f %d" % (s["bits_per_second"], int(s["bytes"])))
    except (KeyError, TypeError):
        die("iperf3 JSON has no end.sum_received")


def cmd_wrk(args):
    with open(args[0]) as f:
        text = f.read()
    m = re.search(r"Requests/sec:\s*([0-9.]+)", text)
    if not m:
        die("no Requests/sec in wrk output")
    errs = 0
    m2 = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m2:
        errs += sum(int(x) for x in m2.groups())
    m3 = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m3:
        errs += int(m3.group(1))
    print("%s %d" % (m.group(1), errs))


# ---------------------------------------------------------------- echo sink
async def _sink(port):
    async def handle(reader, writer):
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    print("READY", flush=True)
    async with server:
        await server.serve_forever()


def cmd_sink(args):
    try:
        asyncio.run(_sink(int(args[0])))
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------- idle connection holder
async def _hold(port, n, timeout):
    conns = []
    sem = asyncio.Semaphore(64)
    failures = []

    async def one(i):
        async with sem:
            msg = b"ping%06d\n" % i
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), timeout)
                w.write(msg)
                await w.drain()
                got = await asyncio.wait_for(r.readexactly(len(msg)), timeout)
                if got != msg:
                    raise RuntimeError("bad echo")
                conns.append((r, w))
            except Exception as e:  # noqa: BLE001 - report any failure
                failures.append("%s: %r" % (i, e))

    t0 = time.time()
    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    pending = set(tasks)
    while pending and not failures:  # stop at the first failure instead of waiting for all timeouts
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if failures:
        print("FAILED after %d of %d connections were up, first error: connection %s" % (
            len(conns), n, failures[0]), flush=True)
        return 1
    print("READY %d %.2f" % (len(conns), time.time() - t0), flush=True)
    # Hold until stdin closes or we are killed.
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    for _, w in conns:
        w.close()
    return 0


def cmd_hold(args):
    sys.exit(asyncio.run(_hold(int(args[0]), int(args[1]), float(args[2]))))


# ---------------------------------------------------------------- report
METRICS = [
    # key, header, format
    ("gbps_1", "Gbit/s 1str", "{:.2f}"),
    ("gbps_8", "Gbit/s 8str", "{:.2f}"),
    ("gbit_per_cpu_s", "Gbit/CPU-s", "{:.2f}"),
    ("conn_per_s", "conn/s", "{:,.0f}"),
    ("kib_per_idle_conn", "KiB/idle conn", "{:.1f}"),
]


def cmd_report(args):
    tsv, out_json, meta_json = args[0], args[1], args[2]
    with open(meta_json) as f:
        meta = json.load(f)
    order = meta.get("scenarios", [])
    res = {s: {} for s in order}
    samples = {}
    errors = []
    with open(tsv) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                continue
            scen, key, val = parts[0], parts[1], parts[2]
            if scen == "error":
                errors.append({"scenario": key, "message": val})
                continue
            res.setdefault(scen, {})
            try:
                samples.setdefault(scen, {}).setdefault(key, []).append(float(val))
            except ValueError:
                res[scen][key] = val
    # A key recorded several times (--repeat N) is reported as the median of its samples;
    # wrk_errors is summed. All samples go to the JSON.
    for scen, keys in samples.items():
        for key, vals in keys.items():
            if key == "wrk_errors":
                res[scen][key] = float(sum(vals))
            elif key in ("machine_busy_pct", "foreign_cpu_pct"):
                res[scen][key] = max(vals)
            else:
                res[scen][key] = statistics.median(vals)
            if len(vals) > 1:
                res[scen].setdefault("samples", {})[key] = vals
    for s, r in res.items():
        for k, _, _ in METRICS:
            r.setdefault(k, None)
    # ratios vs direct
    direct = res.get("direct", {})
    for s, r in list(res.items()):
        for k in ("gbps_1", "gbps_8"):
            d = direct.get(k)
            v = r.get(k)
            r[k + "_vs_direct"] = (v / d) if (isinstance(v, float) and isinstance(d, float) and d) else None

    descs = meta.get("descriptions", {})
    w0 = max([len("scenario")] + [len(s) for s in res])
    heads = [h for _, h, _ in METRICS]
    widths = [max(len(h), 9) for h in heads]
    line = "%-*s  " % (w0, "scenario") + "  ".join("%*s" % (w, h) for w, h in zip(widths, heads))
    print(line)
    print("-" * len(line))
    for s in list(order) + [x for x in res if x not in order]:
        r = res[s]
        cells = []
        for (k, _, fmt), w in zip(METRICS, widths):
            v = r.get(k)
            cells.append("%*s" % (w, fmt.format(v) if isinstance(v, float) else "-"))
        print("%-*s  " % (w0, s) + "  ".join(cells))
    print()
    if isinstance(direct.get("gbps_1"), float):
        print("Throughput vs direct loopback:")
        for s in order:
            if s == "direct":
                continue
            r = res[s]
            parts = []
            for k, lab in (("gbps_1", "1 stream"), ("gbps_8", "8 streams")):
                v = r.get(k + "_vs_direct")
                parts.append("%s %s" % (lab, ("%.0f%%" % (v * 100)) if v is not None else "-"))
            print("  %-*s  %s" % (w0, s, ", ".join(parts)))
        print()
    print("Scenarios:")
    for s in order:
        print("  %-*s  %s" % (w0, s, descs.get(s, "")))
    busy = []
    for s, r in res.items():
        b = r.get("foreign_cpu_pct")  # measured during the kept iperf3/wrk samples
        if not isinstance(b, float):
            continue
        if b > 10:
            busy.append((s, b))
    if busy:
        print()
        print("WARNING: other processes used the CPUs during iperf3/wrk runs of these scenarios")
        print("         (highest share shown); their numbers are not comparable: " +
              ", ".join("%s %.0f%%" % (s, b) for s, b in busy))
    if errors:
        print()
        print("FAILED steps:")
        for e in errors:
            print("  %s: %s" % (e["scenario"], e["message"]))
    doc = {"meta": meta, "results": res, "errors": errors}
    tmp = out_json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, out_json)


def main():
    if len(sys.argv) < 2:
        die(__doc__, 2)
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = globals().get("cmd_" + cmd)
    if not fn:
        die("unknown command %s" % cmd, 2)
    fn(args)


if __name__ == "__main__":
    main()
