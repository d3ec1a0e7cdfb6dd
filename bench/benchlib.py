"""Small pieces the Python benchmarks share (bench/*.py): free ports, waiting for a socket to be
bound without connecting to it, and a process's own CPU time."""
import os
import socket
import subprocess
import time


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_bound(port, proto="tcp", timeout=10):
    """Until something listens on (tcp) or is bound to (udp) 127.0.0.1:port — a probe connection
    would be a tunnel of its own."""
    end = time.time() + timeout
    flag = "-Hlun" if proto == "udp" else "-Hltn"
    while time.time() < end:
        out = subprocess.run(["ss", flag, "sport = :%d" % port], capture_output=True, text=True)
        if out.stdout.strip():
            return
        time.sleep(0.05)
    raise SystemExit("%s port %d never bound" % (proto, port))


def cpu_seconds(pid):
    """utime + stime of the process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
