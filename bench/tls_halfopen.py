#!/usr/bin/python3
"""Memory of a relay+tls server holding half-open TLS handshakes, and after they close (issue 16).

Starts `gost -L relay+tls://127.0.0.1:PORT`, reads its idle RSS, then runs rounds: each opens C
plain TCP connections that send only the start of a TLS handshake and then hold, without ever
finishing it:

  hello    a whole ClientHello (the first flight of a Python ssl.MemoryBIO handshake; the server
           answers with its own flight, which is read, then waits for the client's Finished)
  partial  the first half of a ClientHello (the server waits for the rest of the record)
  none     nothing at all (the server waits for the first byte)

Once all C are open (and, for `hello`, answered) they are held --hold seconds, then closed; RSS is
read --settle seconds later. Per round: RSS before, RSS at the end of the hold, peak (VmHWM reset
before each round through /proc/PID/clear_refs, cross-checked by sampling VmRSS every 50 ms; it
includes the close, when the server fails every handshake at once), RSS after, and KiB per
pending handshake: (held - idle) / C and (peak - idle) / C. GOST closes a handshake that has not
finished after 15 s (`handshakeTimeout`), so opening plus --hold must stay below that.

  bench/tls_halfopen.py [--gost PATH] [--mode hello|partial|none] [--rounds 6] [--conns 2000]
                        [--hold 2] [--settle 3] [--env NAME=VALUE ...] [--json FILE] [--keep-log]

Exit status: 0 all connections were held and answered as expected, 1 the run failed. Everything is
on 127.0.0.1, every wait is bounded, and only the gost started here is signalled.
"""
import argparse
import asyncio
import os
import ssl
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from helper import Sampler, reset_hwm, status_kib  # noqa: E402
from tls_burst import (add_gost_args, finish, gost_binary, gost_env, mib,  # noqa: E402
                       raise_nofile, start_relay_tls)


def client_hello():
    """The bytes of a fresh ClientHello (new random and key share each time)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


async def open_round(port, n, mode, timeout):
    """Opens n connections that each send the start of a handshake; returns (writers, answered,
    errors)."""
    sem = asyncio.Semaphore(128)
    writers, errors = [], []
    answered = 0

    async def one():
        nonlocal answered
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
            except Exception as e:  # noqa: BLE001 - count and report any failure
                errors.append(repr(e))
                return
            writers.append(w)
            try:
                if mode == "hello":
                    w.write(client_hello())
                elif mode == "partial":
                    h = client_hello()
                    w.write(h[: len(h) // 2])
                if mode != "none":
                    await w.drain()
                if mode == "hello":
                    # The server's flight (ServerHello ... Finished): it has processed the hello.
                    if await asyncio.wait_for(r.read(1), timeout):
                        answered += 1
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

    await asyncio.gather(*(one() for _ in range(n)))
    return writers, answered, errors


async def close_all(writers):
    for w in writers:
        w.close()
    await asyncio.gather(*(asyncio.wait_for(w.wait_closed(), 2) for w in writers),
                         return_exceptions=True)


async def one_round(pid, port, n, mode, hold, timeout):
    t0 = time.monotonic()
    writers, answered, errors = await open_round(port, n, mode, timeout)
    opened = time.monotonic() - t0
    await asyncio.sleep(hold)
    held = status_kib(pid, "VmRSS")
    await close_all(writers)
    return len(writers), answered, errors, opened, held


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_gost_args(ap)
    ap.add_argument("--mode", choices=["hello", "partial", "none"], default="hello")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--hold", type=float, default=2.0, help="seconds all connections are held")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after the last close before 'after' is read")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-connection timeout")
    a = ap.parse_args()

    gost = gost_binary(a.gost)
    env = gost_env(a.env)
    raise_nofile(2 * a.conns + 256)  # ours, and gost's (inherited)

    g, port, idle, hwm_ok = start_relay_tls(gost, env, a.env, "tls_halfopen-gost-")
    pid, tail = g.pid, g.tail
    rc = 1
    result = {"gost": gost, "cmd": g.cmd, "env": a.env, "mode": a.mode, "conns": a.conns,
              "hold_s": a.hold, "settle_s": a.settle, "idle_kib": idle, "rounds": []}

    try:
        print("idle RSS %.1f MiB; %d rounds of %d half-open handshakes (mode %s), held %.1f s, "
              "'after' = %.1f s after the close%s" % (
                  mib(idle), a.rounds, a.conns, a.mode, a.hold, a.settle,
                  "" if hwm_ok else " (VmHWM reset refused: sampled peak)"))
        print("%5s %10s %10s %10s %10s %13s %13s %6s %6s" % (
            "round", "before MiB", "held MiB", "peak MiB", "after MiB", "held KiB/hs", "peak KiB/hs",
            "failed", "open s"))
        failed_total = 0
        for i in range(1, a.rounds + 1):
            before = status_kib(pid, "VmRSS")
            reset_hwm(pid)
            with Sampler([pid]) as s:
                held_n, answered, errs, opened, held = asyncio.run(
                    one_round(pid, port, a.conns, a.mode, a.hold, a.timeout))
            hwm = status_kib(pid, "VmHWM") if hwm_ok else 0
            peak = max(s.peak[pid], hwm or 0)
            time.sleep(a.settle)
            after = status_kib(pid, "VmRSS")
            if g.proc.poll() is not None or after is None:
                print("FAILED: gost exited during round %d: %s" % (i, tail()))
                return 1
            per = (peak - idle) / float(a.conns)
            per_held = (held - idle) / float(a.conns)
            failed = a.conns - (answered if a.mode == "hello" else held_n)
            failed_total += failed
            result["rounds"].append({"before_kib": before, "held_kib": held, "peak_kib": peak,
                                     "after_kib": after, "kib_per_pending": round(per, 2),
                                     "held_kib_per_pending": round(per_held, 2),
                                     "failed": failed, "open_s": round(opened, 2)})
            print("%5d %10.1f %10.1f %10.1f %10.1f %13.1f %13.1f %6d %6.2f" % (
                i, mib(before), mib(held), mib(peak), mib(after), per_held, per, failed, opened),
                flush=True)
            if errs:
                print("      first error: %s" % errs[0])
        r = result["rounds"]
        result.update({"worst_kib_per_pending": max(x["kib_per_pending"] for x in r),
                       "worst_held_kib_per_pending": max(x["held_kib_per_pending"] for x in r),
                       "last_after_kib": r[-1]["after_kib"],
                       "worst_after_kib": max(x["after_kib"] for x in r),
                       "failed": failed_total})
        print()
        print("per pending handshake: worst %.1f KiB held, %.1f KiB at the peak; after the close: "
              "last %.1f MiB, worst %.1f MiB (%.2fx idle)" % (
                  result["worst_held_kib_per_pending"], result["worst_kib_per_pending"],
                  mib(r[-1]["after_kib"]), mib(result["worst_after_kib"]),
                  result["worst_after_kib"] / float(idle)))
        if failed_total:
            print("FAILED: %d connections were not held/answered; the numbers are not comparable"
                  % failed_total)
            rc = 1
        else:
            rc = 0
        return rc
    finally:
        finish(g, result, a.json, a.keep_log or rc == 1)


if __name__ == "__main__":
    sys.exit(main())
