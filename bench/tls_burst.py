#!/usr/bin/python3
"""Memory of a relay+tls server across bursts of concurrent TLS handshakes (issue 11).

Starts `gost -L relay+tls://127.0.0.1:PORT`, measures its idle RSS, then runs N bursts of C
concurrent TLS handshakes (each connection handshakes, then closes). For every burst it prints the
RSS before, the peak during the burst (VmHWM, reset before each burst through
/proc/PID/clear_refs, cross-checked by sampling VmRSS) and the RSS SETTLE seconds after the last
client closed. At the end it compares with the aims of issue 11: RSS after every burst <= 2x
the idle baseline, and (peak - idle RSS) / C <= 60 KiB per pending handshake in every burst.

  bench/tls_burst.py [--gost PATH] [--bursts 15] [--conns 1500] [--settle 3] [--pause 0]
                     [--env NAME=VALUE ...] [--json FILE] [--keep-log]

Without --gost: $GOST, else build/gost (only Release numbers mean anything, see bench/README.md).
--env passes extra environment to gost only (e.g. MALLOC_ARENA_MAX=2, LD_PRELOAD=...,
MALLOC_CONF=...), so allocator options can be compared with one binary.
Exit status: 0 aims met, 2 aims missed, 1 the run itself failed (gost died, handshakes failed).
Everything is on 127.0.0.1, every wait is bounded, and only the gost started here is signalled.
"""
import argparse
import asyncio
import json
import os
import resource
import signal
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import helper  # noqa: E402  (bench/helper.py: free ports, listening ports, pid checks)

AIM_AFTER_FACTOR = 2.0  # RSS after the last burst <= 2x idle
AIM_KIB_PER_HANDSHAKE = 60.0  # peak growth per pending handshake (today's level)


status_kib, reset_hwm, Sampler = helper.status_kib, helper.reset_hwm, helper.Sampler


async def burst(port, n, timeout):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # gost's default certificate is self-signed
    errors = []

    async def one():
        w = None
        try:
            _, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"),
                timeout)
            return True
        except Exception as e:  # noqa: BLE001 - count and report any failure
            errors.append(repr(e))
            return False
        finally:
            if w is not None:
                w.close()
                try:
                    await asyncio.wait_for(w.wait_closed(), 2)
                except Exception:  # noqa: BLE001 - the peer may close first
                    pass

    t0 = time.monotonic()
    res = await asyncio.gather(*(one() for _ in range(n)))
    return sum(res), errors, time.monotonic() - t0


def mib(kib):
    return kib / 1024.0


# ---- shared with bench/tls_halfopen.py and bench/idle_tunnels.py
def gost_binary(path):
    """The gost to measure (--gost, else $GOST, else build/gost); warns about a non-Release one."""
    gost = path or os.path.join(ROOT, "build", "gost")
    if not os.access(gost, os.X_OK):
        helper.die("%s is not an executable (use --gost PATH or GOST=...)" % gost)
    cache = os.path.join(os.path.dirname(os.path.realpath(gost)), "CMakeCache.txt")
    try:
        with open(cache) as f:
            bt = [l.split("=", 1)[1].strip() for l in f if l.startswith("CMAKE_BUILD_TYPE:")]
        if bt and bt[0] != "Release":
            print("WARNING: CMAKE_BUILD_TYPE is '%s' in %s" % (bt[0], cache), file=sys.stderr)
    except OSError:
        pass
    return gost


def gost_env(pairs):
    """This environment plus the NAME=VALUE pairs of --env."""
    env = dict(os.environ)
    for kv in pairs:
        k, sep, v = kv.partition("=")
        if not sep:
            helper.die("--env wants NAME=VALUE, got %r" % kv)
        env[k] = v
    return env


def raise_nofile(want):
    """Raises RLIMIT_NOFILE to `want` if it is lower (children started later inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            print("warning: RLIMIT_NOFILE is only %d" % new, file=sys.stderr)


def free_port():
    return int(subprocess.check_output([sys.executable, os.path.join(HERE, "helper.py"),
                                        "freeport"]))


def stop_process(proc):
    """SIGTERM to a process started here, SIGKILL if it is still there 5 s later."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_relay_tls(gost, env, env_pairs, prefix):
    """Starts `gost -L relay+tls://127.0.0.1:PORT` and prints its command line once it listens
    and has settled; returns (the Gost, PORT, its idle RSS in KiB, whether VmHWM can be reset)."""
    port = free_port()
    g = Gost([gost, "-L", "relay+tls://127.0.0.1:%d" % port], env, prefix=prefix)
    if not g.wait_listening(port):
        tail = g.tail()
        g.stop()
        helper.die("gost did not listen on %d: %s" % (port, tail))
    time.sleep(1.0)
    idle = status_kib(g.pid, "VmRSS")
    hwm_ok = reset_hwm(g.pid)
    print("gost: %s %s%s" % (gost, " ".join(g.cmd[1:]),
                             (" (env " + " ".join(env_pairs) + ")") if env_pairs else ""))
    return g, port, idle, hwm_ok


def add_gost_args(ap):
    """--gost, --env, --json and --keep-log."""
    ap.add_argument("--gost", default=os.environ.get("GOST"))
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--json", help="write the numbers to this file")
    ap.add_argument("--keep-log", action="store_true")


def finish(g, result, json_path, keep_log):
    """Stops gost, writes `result` to --json, keeps and names gost's log if asked (or failed)."""
    g.stop(keep_log=keep_log)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    if keep_log:
        print("gost log: %s" % g.log.name)


class Gost:
    """A gost started here with its output in a log file (a temp file unless `log_path`)."""

    def __init__(self, args, env, prefix="gost-", log_path=None):
        self.log = (open(log_path, "w") if log_path else
                    tempfile.NamedTemporaryFile(prefix=prefix, suffix=".log", delete=False))
        self.cmd = args
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        self.pid = self.proc.pid

    def tail(self):
        try:
            with open(self.log.name, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log.name) - 1500))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_listening(self, port, seconds=10):
        """True once `port` listens; False if gost exited or the time is up."""
        deadline = time.time() + seconds
        while port not in helper.listening_ports():
            if self.proc.poll() is not None or time.time() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self, keep_log=True):
        stop_process(self.proc)
        self.log.close()
        if not keep_log:
            os.unlink(self.log.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_gost_args(ap)
    ap.add_argument("--bursts", type=int, default=15)
    ap.add_argument("--conns", type=int, default=1500)
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after the last close before 'after' is read")
    ap.add_argument("--pause", type=float, default=0.0,
                    help="extra seconds between bursts (after the 'after' reading)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-handshake timeout")
    a = ap.parse_args()

    gost = gost_binary(a.gost)
    env = gost_env(a.env)
    raise_nofile(a.conns + 256)  # each burst holds up to --conns sockets at once in this process

    g, port, idle, hwm_ok = start_relay_tls(gost, env, a.env, "tls_burst-gost-")
    pid, tail = g.pid, g.tail
    rc = 1
    result = {"gost": gost, "cmd": g.cmd, "env": a.env, "conns": a.conns, "settle_s": a.settle,
              "idle_kib": idle, "bursts": []}

    try:
        print("idle RSS %.1f MiB; %d bursts of %d concurrent TLS handshakes, 'after' = %.1f s "
              "after the last close%s" % (mib(idle), a.bursts, a.conns, a.settle,
                                          "" if hwm_ok else " (VmHWM reset refused: sampled peak)"))
        print("%5s %11s %11s %11s %14s %7s %7s" % ("burst", "before MiB", "peak MiB",
                                                 "after MiB", "peak KiB/hs", "failed", "secs"))
        failed_total = 0
        for i in range(1, a.bursts + 1):
            before = status_kib(pid, "VmRSS")
            reset_hwm(pid)
            with Sampler([pid]) as s:
                ok, errs, secs = asyncio.run(burst(port, a.conns, a.timeout))
            hwm = status_kib(pid, "VmHWM") if hwm_ok else 0
            peak = max(s.peak[pid], hwm or 0)
            time.sleep(a.settle)
            after = status_kib(pid, "VmRSS")
            if g.proc.poll() is not None or after is None:
                print("FAILED: gost exited during burst %d: %s" % (i, tail()))
                return 1
            per = (peak - idle) / float(a.conns)
            failed = a.conns - ok
            failed_total += failed
            result["bursts"].append({"before_kib": before, "peak_kib": peak, "after_kib": after,
                                     "peak_kib_per_handshake": round(per, 2), "ok": ok,
                                     "failed": failed, "seconds": round(secs, 2)})
            print("%5d %11.1f %11.1f %11.1f %14.1f %7d %7.2f" % (
                i, mib(before), mib(peak), mib(after), per, failed, secs), flush=True)
            if errs:
                print("      first error: %s" % errs[0])
            if a.pause:
                time.sleep(a.pause)
        b = result["bursts"]
        last_after = b[-1]["after_kib"]
        worst_after = max(x["after_kib"] for x in b)
        worst_per = max(x["peak_kib_per_handshake"] for x in b)
        ok_after = worst_after <= AIM_AFTER_FACTOR * idle
        ok_peak = worst_per <= AIM_KIB_PER_HANDSHAKE
        result.update({"last_after_kib": last_after, "worst_after_kib": worst_after,
                       "worst_peak_kib_per_handshake": worst_per,
                       "aim_after_met": ok_after, "aim_peak_met": ok_peak,
                       "failed_handshakes": failed_total})
        print()
        print("after each burst: worst %.1f MiB = %.2fx idle (aim <= %.0fx): %s" % (
            mib(worst_after), worst_after / idle, AIM_AFTER_FACTOR, "met" if ok_after else "MISSED"))
        print("peak growth per pending handshake: worst %.1f KiB (aim <= %.0f KiB): %s" % (
            worst_per, AIM_KIB_PER_HANDSHAKE, "met" if ok_peak else "MISSED"))
        if failed_total:
            print("FAILED: %d handshakes did not complete; the numbers are not comparable" %
                  failed_total)
            rc = 1
        else:
            rc = 0 if (ok_after and ok_peak) else 2
        print("verdict: %s" % ("aims met" if rc == 0 else "aims missed" if rc == 2 else "run failed"))
        return rc
    finally:
        finish(g, result, a.json, a.keep_log or rc == 1)


if __name__ == "__main__":
    sys.exit(main())
