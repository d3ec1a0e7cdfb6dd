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
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import helper  # noqa: E402  (bench/helper.py: free ports, listening ports, pid checks)

AIM_AFTER_FACTOR = 2.0  # RSS after the last burst <= 2x idle
AIM_KIB_PER_HANDSHAKE = 60.0  # peak growth per pending handshake (today's level)


def status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_hwm(pid):
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); False if refused."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Sampler:
    """Samples VmRSS every 20 ms in a thread; keeps the maximum (a cross-check of VmHWM, and the
    peak where clear_refs is not allowed)."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            v = status_kib(self.pid, "VmRSS")
            if v is not None:
                self.peak = max(self.peak, v)
            self._stop.wait(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(2)


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gost", default=os.environ.get("GOST"))
    ap.add_argument("--bursts", type=int, default=15)
    ap.add_argument("--conns", type=int, default=1500)
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after the last close before 'after' is read")
    ap.add_argument("--pause", type=float, default=0.0,
                    help="extra seconds between bursts (after the 'after' reading)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-handshake timeout")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--json", help="write the numbers to this file")
    ap.add_argument("--keep-log", action="store_true")
    a = ap.parse_args()

    gost = a.gost or os.path.join(ROOT, "build", "gost")
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
    env = dict(os.environ)
    for kv in a.env:
        k, sep, v = kv.partition("=")
        if not sep:
            helper.die("--env wants NAME=VALUE, got %r" % kv)
        env[k] = v

    # Each burst holds up to --conns sockets at once in this process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.conns + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            print("warning: RLIMIT_NOFILE is only %d" % new, file=sys.stderr)

    port = int(subprocess.check_output([sys.executable, os.path.join(HERE, "helper.py"),
                                        "freeport"]))
    log = tempfile.NamedTemporaryFile(prefix="tls_burst-gost-", suffix=".log", delete=False)
    cmd = [gost, "-L", "relay+tls://127.0.0.1:%d" % port]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env)
    pid = proc.pid
    rc = 1
    result = {"gost": gost, "cmd": cmd, "env": a.env, "conns": a.conns, "settle_s": a.settle,
              "bursts": []}

    def stop():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def tail():
        try:
            with open(log.name, "rb") as f:
                f.seek(max(0, os.path.getsize(log.name) - 1500))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    try:
        deadline = time.time() + 10
        while port not in helper.listening_ports():
            if proc.poll() is not None or time.time() > deadline:
                helper.die("gost did not listen on %d: %s" % (port, tail()))
            time.sleep(0.05)
        time.sleep(1.0)
        idle = status_kib(pid, "VmRSS")
        hwm_ok = reset_hwm(pid)
        result["idle_kib"] = idle
        print("gost: %s %s%s" % (gost, " ".join(cmd[1:]),
                                 (" (env " + " ".join(a.env) + ")") if a.env else ""))
        print("idle RSS %.1f MiB; %d bursts of %d concurrent TLS handshakes, 'after' = %.1f s "
              "after the last close%s" % (mib(idle), a.bursts, a.conns, a.settle,
                                          "" if hwm_ok else " (VmHWM reset refused: sampled peak)"))
        print("%5s %11s %11s %11s %14s %7s %7s" % ("burst", "before MiB", "peak MiB",
                                                 "after MiB", "peak KiB/hs", "failed", "secs"))
        failed_total = 0
        for i in range(1, a.bursts + 1):
            before = status_kib(pid, "VmRSS")
            reset_hwm(pid)
            with Sampler(pid) as s:
                ok, errs, secs = asyncio.run(burst(port, a.conns, a.timeout))
            hwm = status_kib(pid, "VmHWM") if hwm_ok else 0
            peak = max(s.peak, hwm or 0)
            time.sleep(a.settle)
            after = status_kib(pid, "VmRSS")
            if proc.poll() is not None or after is None:
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
        stop()
        log.close()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=2)
                f.write("\n")
        if a.keep_log or rc == 1:
            print("gost log: %s" % log.name)
        else:
            os.unlink(log.name)


if __name__ == "__main__":
    sys.exit(main())
