#!/usr/bin/env bash
# Loopback benchmark for gost: throughput (iperf3), CPU efficiency, new connections per second
# (wrk + nginx) and memory per idle tunnelled connection. See bench/README.md.
#
#   bench/run.sh [--quick] [--repeat N] [--wait-quiet SECONDS] [--only a,b] [--no-build] [--out FILE]
#   GOST=/path/to/gost bench/run.sh
#
# Everything listens on 127.0.0.1 on ports picked at run time; only processes started by this
# script are ever signalled (checked by pid + start time), and all of them are stopped on exit.
set -uo pipefail
# The whole script is one { ... } block, so bash parses all of it before running anything and an
# edit of this file during a run cannot break the run.
{

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=/usr/bin/python3
HELPER="$HERE/helper.py"

# ------------------------------------------------------------------------------------------------
# Scenarios. A scenario is a function `scenario_<name> TARGET_PORT` that starts the gost processes
# needed to reach 127.0.0.1:TARGET_PORT, registers them with `start_gost` (which appends to
# SCEN_PIDS) and sets ENTRY_PORT to the port a plain TCP client must connect to. It returns
# non-zero (after `fail_msg "..."`) if something could not be started. To add one: write the
# function, add its name to SCENARIOS and a line to SCEN_DESC.
# ------------------------------------------------------------------------------------------------
SCENARIOS=(direct tcp tcp_limiter tcp_controls http socks5 relay relay_limiter relay_controls relay_tls socks5_ws relay_wss relay_wss_controls relay_mws relay_mwss relay_pht relay_phts relay_h2c relay_h2 http2 relay_grpc relay_grpc_insecure socks5_h2c socks5_h2 relay_h3 socks5_h3 relay_wt masque rtcp_ws rtcp_wss tunnel_grpc)
declare -A SCEN_DESC=(
  [direct]="direct loopback, no gost (physical limit)"
  [tcp]="gost -L tcp://127.0.0.1:P/127.0.0.1:TARGET"
  [tcp_limiter]="tcp with a limiter, climiter and rlimiter whose lines do not apply to 127.0.0.1 (the cost of an unlimited limiter)"
  [http]="gost -L tcp://127.0.0.1:P/127.0.0.1:TARGET -F http://127.0.0.1:Q  ->  gost -L http://127.0.0.1:Q"
  [socks5]="gost -L tcp://127.0.0.1:P/127.0.0.1:TARGET -F socks5://127.0.0.1:Q  ->  gost -L socks5://127.0.0.1:Q (GOST's TLS method 0x80 between the two)"
  [relay]="gost -L tcp://127.0.0.1:P/127.0.0.1:TARGET -F relay://127.0.0.1:Q  ->  gost -L relay://127.0.0.1:Q"
  [relay_limiter]="relay with the limiters of tcp_limiter on both gost services"
  [relay_tls]="gost -L tcp://127.0.0.1:P/127.0.0.1:TARGET -F relay+tls://127.0.0.1:Q  ->  gost -L relay+tls://127.0.0.1:Q"
  [socks5_ws]="the same chain with socks5+ws (GOST's TLS method 0x80 inside the WebSocket)"
  [relay_wss]="the same chain with relay+wss"
  [relay_mws]="the same chain with relay+mws (tunnels multiplexed over one WebSocket per worker)"
  [relay_mwss]="the same chain with relay+mwss"
  [relay_pht]="the same chain with relay+pht (default paths)"
  [relay_phts]="the same chain with relay+phts"
  [relay_h2c]="the same chain with relay+h2c (HTTP/2 streams over one cleartext connection per worker)"
  [relay_h2]="the same chain with relay+h2 (HTTP/2 over TLS)"
  [http2]="the same chain with http2 (HTTP/2 CONNECT proxy over TLS)"
  [relay_grpc]="the same chain with relay+grpc (gRPC tunnel over TLS)"
  [relay_grpc_insecure]="the same chain with relay+grpc?grpcInsecure=true (cleartext HTTP/2)"
  [socks5_h2c]="the same chain with socks5+h2c (GOST's TLS method 0x80 inside the HTTP/2 stream)"
  [socks5_h2]="the same chain with socks5+h2"
  [relay_h3]="the same chain with relay+h3 (PHT over HTTP/3: QUIC over UDP, one connection per worker)"
  [socks5_h3]="the same chain with socks5+h3"
  [relay_wt]="the same chain with relay+wt (WebTransport over HTTP/3: one session per worker, a stream per tunnel)"
  [masque]="the same chain with MASQUE (-L masque+http3:// -F masque+h3-masque://: an HTTP/3 CONNECT stream per tunnel, one QUIC connection per worker)"
  [rtcp_ws]="reverse: gost -L relay+ws://127.0.0.1:Q?bind=true  <-  gost -L rtcp://127.0.0.1:P/127.0.0.1:TARGET -F relay+ws://127.0.0.1:Q (clients connect to P on the server)"
  [rtcp_wss]="the rtcp_ws pair over relay+wss"
  [tunnel_grpc]="GOST's tunnel over grpc (cleartext): gost -L tunnel+grpc://127.0.0.1:Q?tunnel.direct=true  <-  connector gost -L rtcp://:0/127.0.0.1:TARGET -F tunnel+grpc://127.0.0.1:Q?tunnel.id=ID; clients connect to a visitor gost -L tcp://127.0.0.1:P/app:80 -F tunnel+grpc://127.0.0.1:Q?tunnel.id=ID (three processes)"
  [tcp_controls]="the tcp row with a 1,000-entry bypass and a 1,000-entry admission on the service (none matching)"
  [relay_controls]="the relay row with the same bypass and admission on the relay server"
  [relay_wss_controls]="the relay_wss row with the same bypass and admission on the relay+wss server"
)

scenario_direct() {
  ENTRY_PORT=$1
}

scenario_tcp() {
  local target=$1 p
  free_port p || return 1
  start_gost fwd -L "tcp://127.0.0.1:$p/127.0.0.1:$target" || return 1
  wait_listen "$p" || return 1
  ENTRY_PORT=$p
}

scenario_http() {
  local target=$1 p q
  free_port q || return 1
  start_gost http-server -L "http://127.0.0.1:$q" || return 1
  wait_listen "$q" || return 1
  free_port p || return 1
  start_gost http-client -L "tcp://127.0.0.1:$p/127.0.0.1:$target" -F "http://127.0.0.1:$q" || return 1
  wait_listen "$p" || return 1
  ENTRY_PORT=$p
}

# A configuration file: SERVICE (a YAML services[] entry, one line) named `bench`, with a 1,000-entry
# bypass (250 names, 250 .domains, 250 CIDRs, 250 globs) and a 1,000-entry admission (CIDRs and
# IPs), none of which matches 127.0.0.1 (docs/PROTOCOLS.md "config: controls").
controls_config() {   # file service-line
  "$PY" - "$1" "$2" <<'PYEOF'
import sys
path, service = sys.argv[1], sys.argv[2]
m = []
for i in range(250):
    m += ["host%d.example.com" % i, ".zone%d.net" % i, "10.%d.0.0/16" % i, "*.glob%d.org" % i]
a = ["192.168.%d.0/24" % (i % 256) if i < 500 else "172.16.%d.%d" % (i // 256, i % 256) for i in range(1000)]
with open(path, "w") as f:
    f.write("services:\n  - " + service + "\n")
    f.write("bypasses:\n  - name: big\n    matchers: [%s]\n" % ", ".join('"%s"' % x for x in m))
    f.write("admissions:\n  - name: big\n    matchers: [%s]\n" % ", ".join('"%s"' % x for x in a))
PYEOF
}

scenario_tcp_controls() {
  local target=$1 p
  free_port p || return 1
  controls_config "$TMP/tcp_controls.yaml" "{name: bench, addr: \"127.0.0.1:$p\", bypass: big, admission: big, handler: {type: tcp}, forwarder: {nodes: [{name: t, addr: \"127.0.0.1:$target\"}]}}" || return 1
  start_gost fwd-controls -C "$TMP/tcp_controls.yaml" || return 1
  wait_listen "$p" || return 1
  ENTRY_PORT=$p
}

# The relay row (or relay+X) with the same bypass and admission on the relay server.
scenario_chain_controls() {   # scheme target
  local scheme=$1 target=$2 p q l=${1#relay}
  l=${l#+}
  free_port q || return 1
  controls_config "$TMP/${scheme/+/_}_controls.yaml" "{name: bench, addr: \"127.0.0.1:$q\", bypass: big, admission: big, handler: {type: relay}, listener: {type: ${l:-tcp}}}" || return 1
  start_gost "$scheme-server-controls" -C "$TMP/${scheme/+/_}_controls.yaml" || return 1
  wait_listen "$q" || return 1
  free_port p || return 1
  start_gost "$scheme-client" -L "tcp://127.0.0.1:$p/127.0.0.1:$target" -F "$scheme://127.0.0.1:$q" || return 1
  wait_listen "$p" || return 1
  ENTRY_PORT=$p
}
scenario_relay_controls() { scenario_chain_controls relay "$1"; }
scenario_relay_wss_controls() { scenario_chain_controls relay+wss "$1"; }

# A client gost forwarding to TARGET through one server gost of the given scheme.
scenario_chain() {   # scheme target
  local scheme=$1 target=$2 p q
  free_port q || return 1
  start_gost "$scheme-server" -L "$scheme://127.0.0.1:$q" || return 1
  wait_listen "$q" || return 1
  free_port p || return 1
  start_gost "$scheme-client" -L "tcp://127.0.0.1:$p/127.0.0.1:$target" -F "$scheme://127.0.0.1:$q" || return 1
  wait_listen "$p" || return 1
  ENTRY_PORT=$p
}
# The same over a UDP (QUIC) server: it is up once its socket is bound. The client's scheme may
# differ from the server's (MASQUE: masque+http3 / masque+h3-masque).
scenario_chain_udp() {   # scheme target [client-scheme]
  local scheme=$1 target=$2 cscheme=${3:-$1} p q i
  free_port q || return 1
  start_gost "$scheme-server" -L "$scheme://127.0.0.1:$q" || return 1
  for i in $(seq 100); do
    ss -Hlun "sport = :$q" | grep -q . && break
    sleep 0.1
  done
  ss -Hlun "sport = :$q" | grep -q . || { fail_msg "$scheme server: UDP port $q not bound"; return 1; }
  free_port p || return 1
  start_gost "$cscheme-client" -L "tcp://127.0.0.1:$p/127.0.0.1:$target" -F "$cscheme://127.0.0.1:$q" || return 1
  wait_listen "$p" || return 1
  ENTRY_PORT=$p
}
scenario_relay_h3() { scenario_chain_udp relay+h3 "$1"; }
scenario_socks5_h3() { scenario_chain_udp socks5+h3 "$1"; }
scenario_relay_wt() { scenario_chain_udp relay+wt "$1"; }
scenario_masque() { scenario_chain_udp masque+http3 "$1" masque+h3-masque; }
scenario_socks5() { scenario_chain socks5 "$1"; }
scenario_relay() { scenario_chain relay "$1"; }

# The YAML of one service with limiters whose lines name another network: every connection is
# looked up and none is limited (docs/ARCHITECTURE.md "Limiters": not wrapped, still spliced).
limiter_yaml() {   # file addr handler listener forward_target [chain_node]
  {
    echo "services:"
    echo "- name: svc"
    echo "  addr: $2"
    echo "  limiter: lim"
    echo "  climiter: clim"
    echo "  rlimiter: rlim"
    if [ -n "${6:-}" ]; then
      echo "  handler: {type: $3, chain: chain-0}"
    else
      echo "  handler: {type: $3}"
    fi
    echo "  listener: {type: $4}"
    [ -n "$5" ] && echo "  forwarder: {nodes: [{name: t, addr: $5}]}"
    if [ -n "${6:-}" ]; then
      echo "chains:"
      echo "- name: chain-0"
      echo "  hops: [{name: hop-0, nodes: [{name: node-0, addr: $6, connector: {type: relay}, dialer: {type: tcp}}]}]"
    fi
    echo "limiters: [{name: lim, limits: ['10.0.0.0/8 1MB 1MB']}]"
    echo "climiters: [{name: clim, limits: ['10.0.0.0/8 1']}]"
    echo "rlimiters: [{name: rlim, limits: ['10.0.0.0/8 1']}]"
  } >"$1"
}

scenario_tcp_limiter() {
  local target=$1 p
  free_port p || return 1
  limiter_yaml "$TMP/limiter-fwd.yaml" "127.0.0.1:$p" tcp tcp "127.0.0.1:$target"
  start_gost fwd -C "$TMP/limiter-fwd.yaml" || return 1
  wait_listen "$p" || return 1
  ENTRY_PORT=$p
}

scenario_relay_limiter() {
  local target=$1 p q
  free_port q || return 1
  limiter_yaml "$TMP/limiter-relay-server.yaml" "127.0.0.1:$q" relay tcp ""
  start_gost relay-server -C "$TMP/limiter-relay-server.yaml" || return 1
  wait_listen "$q" || return 1
  free_port p || return 1
  limiter_yaml "$TMP/limiter-relay-client.yaml" "127.0.0.1:$p" tcp tcp "127.0.0.1:$target" \
    "127.0.0.1:$q"
  start_gost relay-client -C "$TMP/limiter-relay-client.yaml" || return 1
  wait_listen "$p" || return 1
  ENTRY_PORT=$p
}
scenario_relay_tls() { scenario_chain relay+tls "$1"; }
scenario_socks5_ws() { scenario_chain socks5+ws "$1"; }
scenario_relay_wss() { scenario_chain relay+wss "$1"; }
scenario_relay_mws() { scenario_chain relay+mws "$1"; }
scenario_relay_mwss() { scenario_chain relay+mwss "$1"; }
scenario_relay_pht() { scenario_chain relay+pht "$1"; }
scenario_relay_phts() { scenario_chain relay+phts "$1"; }
scenario_relay_h2c() { scenario_chain relay+h2c "$1"; }
scenario_relay_h2() { scenario_chain relay+h2 "$1"; }
scenario_http2() { scenario_chain http2 "$1"; }
scenario_relay_grpc() { scenario_chain relay+grpc "$1"; }
scenario_socks5_h2c() { scenario_chain socks5+h2c "$1"; }
scenario_socks5_h2() { scenario_chain socks5+h2 "$1"; }
# Reverse forwarding (docs/PROTOCOLS.md "rtcp and rudp"): the server listens on P for the client,
# whose rtcp service bound it through the chain; both processes count.
scenario_rtcp() {
  local scheme=$1 target=$2 p q
  free_port q || return 1
  start_gost rtcp-server -L "$scheme://127.0.0.1:$q?bind=true" || return 1
  wait_listen "$q" || return 1
  free_port p || return 1
  start_gost rtcp-client -L "rtcp://127.0.0.1:$p/127.0.0.1:$target" -F "$scheme://127.0.0.1:$q" || return 1
  wait_listen "$p" || return 1
  ENTRY_PORT=$p
}
# GOST's tunnel (docs/PROTOCOLS.md "tunnel"): server, connector and a visitor (iperf3 speaks no
# HTTP, so it comes by tunnel ID rather than through the entrypoint); all three count.
scenario_tunnel_grpc() {
  local target=$1 p q id=893787fd-fcd2-46a0-8dc4-f9f8a1f1b0c9
  free_port q || return 1
  start_gost tunnel-server -L "tunnel+grpc://127.0.0.1:$q?grpcInsecure=true&tunnel.direct=true" || return 1
  wait_listen "$q" || return 1
  start_gost tunnel-connector -L "rtcp://:0/127.0.0.1:$target" \
    -F "tunnel+grpc://127.0.0.1:$q?grpcInsecure=true&tunnel.id=$id" || return 1
  free_port p || return 1
  start_gost tunnel-visitor -L "tcp://127.0.0.1:$p/app:80" \
    -F "tunnel+grpc://127.0.0.1:$q?grpcInsecure=true&tunnel.id=$id" || return 1
  wait_listen "$p" || return 1
  sleep 1  # the connector registers
  ENTRY_PORT=$p
}
scenario_rtcp_ws() { scenario_rtcp relay+ws "$1"; }
scenario_rtcp_wss() { scenario_rtcp relay+wss "$1"; }
scenario_relay_grpc_insecure() {
  local target=$1 p q
  free_port q || return 1
  start_gost grpc-server -L "relay+grpc://127.0.0.1:$q?grpcInsecure=true" || return 1
  wait_listen "$q" || return 1
  free_port p || return 1
  start_gost grpc-client -L "tcp://127.0.0.1:$p/127.0.0.1:$target" \
    -F "relay+grpc://127.0.0.1:$q?grpcInsecure=true" || return 1
  wait_listen "$p" || return 1
  ENTRY_PORT=$p
}

# ------------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------------
QUICK=0
REPEAT=1
WAIT_QUIET=0
NO_BUILD=0
ONLY=""
OUT="$HERE/results/latest.json"
usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --repeat) shift; REPEAT=${1:-} ;;
    --repeat=*) REPEAT=${1#--repeat=} ;;
    --wait-quiet) shift; WAIT_QUIET=${1:-} ;;
    --wait-quiet=*) WAIT_QUIET=${1#--wait-quiet=} ;;
    --no-build) NO_BUILD=1 ;;
    --only) shift; ONLY=${1:-} ;;
    --only=*) ONLY=${1#--only=} ;;
    --out) shift; OUT=${1:-} ;;
    --out=*) OUT=${1#--out=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$ONLY" ]; then
  IFS=, read -r -a SEL <<<"$ONLY"
  for s in "${SEL[@]}"; do
    declare -F "scenario_$s" >/dev/null || { echo "unknown scenario: $s (known: ${SCENARIOS[*]})" >&2; exit 2; }
  done
  SCENARIOS=("${SEL[@]}")
fi

case "$REPEAT" in ''|*[!0-9]*|0) echo "--repeat needs a positive integer" >&2; exit 2 ;; esac
case "$WAIT_QUIET" in ''|*[!0-9]*) echo "--wait-quiet needs a number of seconds" >&2; exit 2 ;; esac
if [ "$QUICK" = 1 ]; then DUR=2; IDLE_N=200; else DUR=5; IDLE_N=1000; fi
WRK_THREADS=2
WRK_CONNS=50
IDLE_SETTLE=2

# ------------------------------------------------------------------------------------------------
# Process bookkeeping
# ------------------------------------------------------------------------------------------------
TMP=$(mktemp -d /tmp/gost-bench.XXXXXX) || { echo "FAILED: mktemp" >&2; exit 1; }
chmod 755 "$TMP"
RESULTS="$TMP/results.tsv"
: >"$RESULTS"
: >"$TMP/lasterr"
declare -A PID_START=()   # pid -> start time (field 22 of /proc/pid/stat) of every process we started
declare -A PID_NAME=()
declare -A PID_LOG=()
SCEN_PIDS=()
ENTRY_PORT=""
USED_PORTS=()
FAILURES=0
CUR_SCEN="setup"
LAST_PID=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail_msg() { echo "$*" >"$TMP/lasterr"; }

pid_starttime() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "${20}"
}

is_ours_alive() {
  local pid=$1 st
  [ -n "${PID_START[$pid]:-}" ] || return 1
  st=$(pid_starttime "$pid") || return 1
  [ "$st" = "${PID_START[$pid]}" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]
}

register_pid() {   # pid name [log]
  local st
  st=$(pid_starttime "$1") || st="gone"
  PID_START[$1]=$st
  PID_NAME[$1]=$2
  PID_LOG[$1]=${3:-}
}

# start_bg NAME LOGFILE CMD... ; sets LAST_PID
start_bg() {
  local name=$1 logf=$2
  shift 2
  "$@" >"$logf" 2>&1 </dev/null &
  LAST_PID=$!
  register_pid "$LAST_PID" "$name" "$logf"
}

# Register the children of one of our processes (e.g. nginx workers) so they are cleaned up too.
register_children() {
  local parent=$1 f pid ppid
  for f in /proc/[0-9]*/stat; do
    pid=${f#/proc/}; pid=${pid%/stat}
    ppid=$(awk '{s=$0; sub(/.*\) /,"",s); split(s,a," "); print a[2]}' "$f" 2>/dev/null) || continue
    [ "$ppid" = "$parent" ] && [ -z "${PID_START[$pid]:-}" ] && register_pid "$pid" "${PID_NAME[$parent]}-child"
  done
  return 0
}

stop_pid() {
  local pid=$1 i
  if is_ours_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do
      is_ours_alive "$pid" || break
      sleep 0.1
    done
    if is_ours_alive "$pid"; then
      log "process ${PID_NAME[$pid]} ($pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  wait "$pid" 2>/dev/null
  unset "PID_START[$pid]" "PID_NAME[$pid]" "PID_LOG[$pid]"
  return 0
}

cleanup() {
  local pid
  trap - EXIT INT TERM
  for pid in "${!PID_START[@]}"; do
    is_ours_alive "$pid" && kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${!PID_START[@]}"; do stop_pid "$pid"; done
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# free_port VAR: store a free port in VAR (not in a $(...) subshell, so USED_PORTS is kept)
free_port() {
  local _fp_port
  _fp_port=$("$PY" "$HELPER" freeport "${USED_PORTS[@]}" 2>"$TMP/fp.err") || { fail_msg "free_port: $(cat "$TMP/fp.err")"; return 1; }
  USED_PORTS+=("$_fp_port")
  printf -v "$1" '%s' "$_fp_port"
}

# wait_listen PORT [PIDS...]  (defaults to the current scenario's pids)
wait_listen() {
  local port=$1; shift
  local pids=("$@")
  [ ${#pids[@]} -gt 0 ] || pids=("${SCEN_PIDS[@]}")
  local pid msg
  if ! "$PY" "$HELPER" waitlisten "$port" 10 "${pids[@]}" 2>"$TMP/wl.err"; then
    msg=$(sed 's/^helper: //' "$TMP/wl.err")
    for pid in "${pids[@]}"; do msg=${msg//"process $pid "/"${PID_NAME[$pid]:-process} (pid $pid) "}; done
    fail_msg "$msg"
    return 1
  fi
}

GOST_N=0
start_gost() {   # label args...
  local label=$1; shift
  GOST_N=$((GOST_N + 1))
  start_bg "gost-$label" "$TMP/gost-$GOST_N-$label.log" "$GOST" "$@"
  SCEN_PIDS+=("$LAST_PID")
  echo "gost $*" >>"$TMP/gost-cmds.txt"
}

start_scenario() {   # name target_port
  SCEN_PIDS=()
  ENTRY_PORT=""
  : >"$TMP/lasterr"
  if ! "scenario_$1" "$2"; then
    [ -s "$TMP/lasterr" ] || fail_msg "scenario_$1 returned an error"
    return 1
  fi
  [ -n "$ENTRY_PORT" ] || { fail_msg "scenario_$1 did not set ENTRY_PORT"; return 1; }
}

stop_scenario() {
  local pid
  for pid in "${SCEN_PIDS[@]}"; do stop_pid "$pid"; done
  SCEN_PIDS=()
}

scen_alive() {
  local pid
  for pid in "${SCEN_PIDS[@]}"; do
    is_ours_alive "$pid" || { fail_msg "${PID_NAME[$pid]:-pid $pid} died"; return 1; }
  done
}

show_logs() {
  local pid f
  for pid in "${SCEN_PIDS[@]}"; do
    f=${PID_LOG[$pid]:-}
    [ -n "$f" ] && [ -s "$f" ] || continue
    echo "    --- last lines of ${PID_NAME[$pid]} log ($f):" >&2
    tail -n 5 "$f" | sed 's/^/    /' >&2
  done
}

record() { printf '%s\t%s\t%s\n' "$CUR_SCEN" "$1" "$2" >>"$RESULTS"; }

step_failed() {   # step description
  local msg
  msg="$1: $(cat "$TMP/lasterr" 2>/dev/null)"
  FAILURES=$((FAILURES + 1))
  log "FAILED [$CUR_SCEN] $msg"
  show_logs
  printf 'error\t%s\t%s\n' "$CUR_SCEN" "$msg" | tr -d '\r' >>"$RESULTS"
}

cpu_of() { [ $# -gt 0 ] || { echo 0; return; }; "$PY" "$HELPER" cpu "$@"; }
rss_of() { [ $# -gt 0 ] || { echo 0; return; }; "$PY" "$HELPER" rss "$@"; }

# ------------------------------------------------------------------------------------------------
# Shared targets: nginx (static file) and the echo sink. iperf3 -s is started per scenario.
# ------------------------------------------------------------------------------------------------
NGINX_PORT=""
SINK_PORT=""

start_nginx() {
  local d="$TMP/nginx" pid
  mkdir -p "$d/www" "$d/tmp" && chmod -R 755 "$d"
  head -c 612 /dev/zero | tr '\0' 'x' >"$d/www/index.html"
  free_port NGINX_PORT || return 1
  cat >"$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  default_type text/html;
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    root $d/www;
    location / { index index.html; }
  }
}
EOF
  start_bg nginx "$d/stderr.log" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log"
  pid=$LAST_PID
  if ! wait_listen "$NGINX_PORT" "$pid"; then
    fail_msg "nginx: $(cat "$TMP/lasterr") $(tail -n 3 "$d/error.log" "$d/stderr.log" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
  sleep 0.2
  register_children "$pid"
}

start_sink() {
  free_port SINK_PORT || return 1
  start_bg sink "$TMP/sink.log" "$PY" "$HELPER" sink "$SINK_PORT"
  wait_listen "$SINK_PORT" "$LAST_PID"
}

# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------
# Before each measurement: how busy are the CPUs with other processes (nothing of ours is busy
# now)? With --wait-quiet S, wait up to S seconds for a quiet machine (< 5 % busy over 2 s).
# The maximum per scenario goes to the results as machine_busy_pct.
settle() {
  local busy waited=0
  busy=$("$PY" "$HELPER" busy 1 2>/dev/null) || return 0
  if [ "$WAIT_QUIET" -gt 0 ] && awk -v b="$busy" 'BEGIN{exit !(b>=5)}'; then
    log "[$CUR_SCEN] machine ${busy}% busy, waiting up to ${WAIT_QUIET}s for it to become quiet"
    while [ "$waited" -lt "$WAIT_QUIET" ]; do
      busy=$("$PY" "$HELPER" busy 2 2>/dev/null) || return 0
      waited=$((waited + 2))
      awk -v b="$busy" 'BEGIN{exit !(b<5)}' && break
    done
  fi
  record machine_busy_pct "$busy"
  if awk -v b="$busy" 'BEGIN{exit !(b>10)}'; then
    log "[$CUR_SCEN] WARNING: ${busy}% of the CPUs are busy with other processes; numbers will be off"
  fi
  return 0
}
# iperf3 through the scenario: 1 and 8 streams; CPU of gost during the single-stream and 8-stream runs.
# Snapshot of the CPU time of every process this script did not start (see helper foreign).
snap_now() {   # prints the snapshot file name (called in $(...), so no counters here)
  local f
  f=$(mktemp "$TMP/snap.XXXXXX") && "$PY" "$HELPER" snap "$f" "$$" 2>/dev/null
  echo "$f"
}

# after_sample SNAP_BEFORE: sets FOREIGN (% of the machine used by other processes during the
# sample) and returns 1 if the sample must be thrown away and repeated (with --wait-quiet only,
# at most 2 repeats per sample; ATTEMPT is the caller's counter).
after_sample() {
  local s1
  s1=$(snap_now)
  FOREIGN=$("$PY" "$HELPER" foreign "$1" "$s1" 2>/dev/null) || FOREIGN=0
  rm -f "$1" "$s1"
  awk -v f="$FOREIGN" 'BEGIN{exit !(f>10)}' || return 0
  if [ "$WAIT_QUIET" -gt 0 ] && [ "$ATTEMPT" -lt 3 ]; then
    log "[$CUR_SCEN]   other processes used ${FOREIGN}% of the CPUs during this sample: repeating it"
    settle
    return 1
  fi
  log "[$CUR_SCEN]   WARNING: other processes used ${FOREIGN}% of the CPUs during this sample"
  return 0
}

# iperf3 through the scenario: 1 and 8 streams; CPU of gost during each run.
measure_iperf() {
  local port srv n out parsed bps bytes c0 c1 cpu gbit rep rc s0 suffix
  free_port port || { step_failed "iperf3: pick port"; return 1; }
  start_bg iperf3-server "$TMP/iperf3-server-$CUR_SCEN.log" iperf3 -s -B 127.0.0.1 -p "$port"
  srv=$LAST_PID
  if ! wait_listen "$port" "$srv"; then step_failed "iperf3: start server"; stop_pid "$srv"; return 1; fi
  if ! start_scenario "$CUR_SCEN" "$port"; then step_failed "iperf3: start scenario"; stop_scenario; stop_pid "$srv"; return 1; fi
  for n in 1 8; do
   for rep in $(seq 1 "$REPEAT"); do
    ATTEMPT=0
    while :; do
      ATTEMPT=$((ATTEMPT + 1))
      out="$TMP/iperf-$CUR_SCEN-P$n-$rep-$ATTEMPT.json"
      log "[$CUR_SCEN] iperf3 -P $n -t $DUR via port $ENTRY_PORT"
      c0=$(cpu_of "${SCEN_PIDS[@]}") || { fail_msg "cannot read CPU time"; step_failed "iperf3 -P $n: cpu before"; break; }
      s0=$(snap_now)
      timeout -k 5 $((DUR + 20)) iperf3 -c 127.0.0.1 -p "$ENTRY_PORT" -t "$DUR" -P "$n" -J >"$out" 2>"$out.err"
      rc=$?
      c1=$(cpu_of "${SCEN_PIDS[@]}") || { fail_msg "gost process died during the run"; step_failed "iperf3 -P $n: cpu after"; break; }
      if ! parsed=$("$PY" "$HELPER" iperf "$out" 2>"$TMP/ip.err"); then
        if [ $rc = 124 ]; then fail_msg "iperf3 timed out after $((DUR + 20)) s"; else fail_msg "rc=$rc $(cat "$TMP/ip.err") $(head -c 300 "$out.err")"; fi
        step_failed "iperf3 -P $n"
        # the server may be wedged after a failed test: restart it
        stop_pid "$srv"
        start_bg iperf3-server "$TMP/iperf3-server-$CUR_SCEN.log" iperf3 -s -B 127.0.0.1 -p "$port"; srv=$LAST_PID
        wait_listen "$port" "$srv" || true
        break
      fi
      after_sample "$s0" || continue
      read -r bps bytes <<<"$parsed"
      gbit=$(awk -v b="$bps" 'BEGIN{printf "%.4f", b/1e9}')
      record "gbps_$n" "$gbit"
      record "bytes_$n" "$bytes"
      record foreign_cpu_pct "$FOREIGN"
      if [ ${#SCEN_PIDS[@]} -gt 0 ]; then
        cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.4f", b-a}')
        record "cpu_s_$n" "$cpu"
        suffix=""; [ "$n" = 8 ] && suffix="_8"
        awk -v c="$cpu" 'BEGIN{exit !(c>0)}' && record "gbit_per_cpu_s$suffix" "$(awk -v by="$bytes" -v c="$cpu" 'BEGIN{printf "%.4f", by*8/1e9/c}')"
        log "[$CUR_SCEN]   $gbit Gbit/s, gost CPU ${cpu}s"
      else
        log "[$CUR_SCEN]   $gbit Gbit/s"
      fi
      break
    done
    sleep 0.5
   done
  done
  stop_scenario
  stop_pid "$srv"
}

measure_wrk() {
  local out parsed rps errs code rep rc s0
  if ! start_scenario "$CUR_SCEN" "$NGINX_PORT"; then step_failed "wrk: start scenario"; stop_scenario; return 1; fi
  # one request first, so a broken tunnel is reported as such and not as "0 requests/s"
  if command -v curl >/dev/null; then
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ENTRY_PORT/" 2>/dev/null)
    if [ "$code" != 200 ]; then
      fail_msg "single GET through the tunnel returned '${code:-nothing}'"
      step_failed "wrk: sanity request"; stop_scenario; return 1
    fi
  fi
  for rep in $(seq 1 "$REPEAT"); do
    ATTEMPT=0
    while :; do
      ATTEMPT=$((ATTEMPT + 1))
      out="$TMP/wrk-$CUR_SCEN-$rep-$ATTEMPT.txt"
      log "[$CUR_SCEN] wrk -t$WRK_THREADS -c$WRK_CONNS -d${DUR}s (Connection: close) via port $ENTRY_PORT"
      s0=$(snap_now)
      timeout -k 5 $((DUR + 30)) wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DUR}s" --timeout 5s \
        -H 'Connection: close' "http://127.0.0.1:$ENTRY_PORT/" >"$out" 2>&1
      rc=$?
      if ! parsed=$("$PY" "$HELPER" wrk "$out" 2>"$TMP/wrk.err"); then
        fail_msg "rc=$rc $(cat "$TMP/wrk.err") $(tail -n 3 "$out" | tr '\n' ' ')"
        step_failed "wrk"; stop_scenario; return 1
      fi
      if ! scen_alive; then step_failed "wrk: gost alive after run"; stop_scenario; return 1; fi
      after_sample "$s0" || continue
      read -r rps errs <<<"$parsed"
      record conn_per_s "$rps"
      record wrk_errors "$errs"
      record foreign_cpu_pct "$FOREIGN"
      log "[$CUR_SCEN]   $rps req/s ($errs errors)"
      [ "$errs" -gt 0 ] && log "[$CUR_SCEN]   WARNING: wrk reported $errs socket errors / non-2xx responses"
      break
    done
    [ "$rep" -lt "$REPEAT" ] && sleep 1
  done
  stop_scenario
}

measure_idle() {
  local r0 r1 holder st i tmo kib
  if ! start_scenario "$CUR_SCEN" "$SINK_PORT"; then step_failed "idle: start scenario"; stop_scenario; return 1; fi
  sleep 0.3
  r0=$(rss_of "${SCEN_PIDS[@]}") || { fail_msg "cannot read RSS"; step_failed "idle: rss before"; stop_scenario; return 1; }
  log "[$CUR_SCEN] opening $IDLE_N idle connections via port $ENTRY_PORT (gost RSS before: $r0 KiB)"
  start_bg holder "$TMP/hold-$CUR_SCEN.out" "$PY" "$HELPER" hold "$ENTRY_PORT" "$IDLE_N" 10
  holder=$LAST_PID
  tmo=$((60 + IDLE_N / 20))
  st=""
  for i in $(seq 1 $((tmo * 10))); do
    if grep -q -E '^(READY|FAILED)' "$TMP/hold-$CUR_SCEN.out" 2>/dev/null; then st=$(grep -E '^(READY|FAILED)' "$TMP/hold-$CUR_SCEN.out" | head -n1); break; fi
    is_ours_alive "$holder" || { st="holder exited: $(tail -n 3 "$TMP/hold-$CUR_SCEN.out" | tr '\n' ' ')"; break; }
    sleep 0.1
  done
  case "$st" in
    READY*) ;;
    "") fail_msg "connections not established within $tmo s"; step_failed "idle: open connections"; stop_pid "$holder"; stop_scenario; return 1 ;;
    *) fail_msg "$st"; step_failed "idle: open connections"; stop_pid "$holder"; stop_scenario; return 1 ;;
  esac
  sleep "$IDLE_SETTLE"
  r1=$(rss_of "${SCEN_PIDS[@]}") || { fail_msg "gost process died while holding connections"; step_failed "idle: rss after"; stop_pid "$holder"; stop_scenario; return 1; }
  if [ ${#SCEN_PIDS[@]} -gt 0 ]; then
    kib=$(awk -v a="$r0" -v b="$r1" -v n="$IDLE_N" 'BEGIN{printf "%.2f", (b-a)/n}')
    record kib_per_idle_conn "$kib"
    record rss_before_kib "$r0"
    record rss_after_kib "$r1"
    log "[$CUR_SCEN]   RSS $r0 -> $r1 KiB = $kib KiB per connection"
  else
    log "[$CUR_SCEN]   $IDLE_N connections held (no gost process, nothing to measure)"
  fi
  record idle_conns "$IDLE_N"
  stop_pid "$holder"
  stop_scenario
}

# ------------------------------------------------------------------------------------------------
# Setup
# ------------------------------------------------------------------------------------------------
die_step() { log "FAILED step: $*"; exit 1; }

for t in iperf3 wrk nginx timeout awk; do
  command -v "$t" >/dev/null || die_step "prerequisites: '$t' not found (scripts/setup.sh installs it)"
done
[ -x "$PY" ] || die_step "prerequisites: $PY not found"

cur=$(ulimit -n)
need=$((IDLE_N * 3 + 1024)); [ "$need" -lt 8192 ] && need=8192
if [ "$cur" != unlimited ] && [ "$cur" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  log "ulimit -n raised from $cur to $(ulimit -n)"
fi

NEED_GOST=0
for s in "${SCENARIOS[@]}"; do [ "$s" != direct ] && NEED_GOST=1; done
GOST_VERSION=""
BUILD_TYPE=""
if [ "$NEED_GOST" = 1 ]; then
  if [ -z "${GOST:-}" ]; then
    GOST="$ROOT/build/gost"
    if [ ! -x "$GOST" ] && [ "$NO_BUILD" = 0 ]; then
      log "$GOST missing, building it (Release)"
      { cmake -S "$ROOT" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C "$ROOT/build" gost; } >&2 \
        || die_step "build gost (cmake/ninja)"
    fi
  fi
  GOST=$(readlink -f "$GOST" 2>/dev/null || echo "$GOST")
  [ -x "$GOST" ] || die_step "locate gost binary: '$GOST' is not an executable (set GOST=/path/to/gost)"
  if ! GOST_VERSION=$(timeout 5 "$GOST" -V 2>/dev/null | head -n1) || [ -z "$GOST_VERSION" ]; then
    log "warning: '$GOST -V' printed no version"; GOST_VERSION=""
  fi
  cache="$(dirname "$GOST")/CMakeCache.txt"
  if [ -f "$cache" ]; then
    BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache")
    [ "$BUILD_TYPE" = Release ] || log "WARNING: CMAKE_BUILD_TYPE is '$BUILD_TYPE' in $cache; publish only numbers of a Release build"
  fi
  log "gost: $GOST (${GOST_VERSION:-?}${BUILD_TYPE:+, $BUILD_TYPE})"
fi

start_nginx || die_step "start nginx: $(cat "$TMP/lasterr")"
start_sink || die_step "start echo sink: $(cat "$TMP/lasterr")"
log "nginx on 127.0.0.1:$NGINX_PORT, echo sink on 127.0.0.1:$SINK_PORT, ${DUR}s runs, $IDLE_N idle connections"

# ------------------------------------------------------------------------------------------------
# Run
# ------------------------------------------------------------------------------------------------
for CUR_SCEN in "${SCENARIOS[@]}"; do
  log "=== scenario $CUR_SCEN: ${SCEN_DESC[$CUR_SCEN]:-}"
  settle; measure_iperf
  sleep 1
  settle; measure_wrk
  sleep 1
  settle; measure_idle
  sleep 1
done
CUR_SCEN="report"

# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
META="$TMP/meta.json"
SCEN_LIST="${SCENARIOS[*]}" GOST_BIN="${GOST:-}" GOST_VERSION="$GOST_VERSION" BUILD_TYPE="$BUILD_TYPE" \
DUR="$DUR" IDLE_N="$IDLE_N" QUICK="$QUICK" REPEAT="$REPEAT" WAIT_QUIET="$WAIT_QUIET" WRK_THREADS="$WRK_THREADS" WRK_CONNS="$WRK_CONNS" \
GOST_CMDS="$(cat "$TMP/gost-cmds.txt" 2>/dev/null)" \
"$PY" - "$META" <<'EOF'
import json, os, platform, sys, time
env = os.environ
desc = {}
cpu = ""
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
meta = {
    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu},
    "gost": {"binary": env["GOST_BIN"] or None, "version": env["GOST_VERSION"] or None,
             "build_type": env["BUILD_TYPE"] or None},
    "quick": env["QUICK"] == "1",
    "repeat": int(env["REPEAT"]),
    "wait_quiet_seconds": int(env["WAIT_QUIET"]),
    "params": {"iperf3_seconds": int(env["DUR"]), "wrk": "-t%s -c%s -d%ss -H 'Connection: close'" % (
        env["WRK_THREADS"], env["WRK_CONNS"], env["DUR"]), "idle_connections": int(env["IDLE_N"])},
    "scenarios": env["SCEN_LIST"].split(),
    "gost_command_lines": [l for l in env["GOST_CMDS"].splitlines() if l],
    "units": {"gbps_1": "Gbit/s, iperf3 1 stream, sum_received",
              "gbps_8": "Gbit/s, iperf3 -P 8, sum_received",
              "gbit_per_cpu_s": "Gbit received per CPU-second of all gost processes (1-stream run); _8 = 8-stream run",
              "conn_per_s": "wrk Requests/sec with Connection: close (= new tunnelled connections/s)",
              "kib_per_idle_conn": "KiB of gost VmRSS growth per idle tunnelled connection"},
    "reference_gost_3.2.6": {
        "direct": {"gbps_1": 22},
        "tcp": {"gbps_1": 11, "gbit_per_cpu_s": 14, "conn_per_s": 4200, "kib_per_idle_conn": 40},
        "http": {"gbps_1": 8.5, "gbit_per_cpu_s": 7, "conn_per_s": 1750, "kib_per_idle_conn": 110},
        "socks5": {"gbps_1": 4.7, "gbit_per_cpu_s": 3.7, "conn_per_s": 860, "kib_per_idle_conn": 157},
        "relay": {"gbps_1": 9.0, "gbit_per_cpu_s": 7.4, "conn_per_s": 2200, "kib_per_idle_conn": 98},
        "relay_tls": {"gbps_1": 5.1, "gbit_per_cpu_s": 4.2, "conn_per_s": 1000, "kib_per_idle_conn": 161},
        # issue 7 (measured with GOST 3.2.6 client and server on this machine; no conn/s figure)
        "socks5_ws": {"gbps_1": 1.4, "gbit_per_cpu_s": 1.1, "kib_per_idle_conn": 202},
        "relay_wss": {"gbps_1": 1.8, "gbit_per_cpu_s": 1.3, "kib_per_idle_conn": 211},
        "relay_pht": {"gbps_1": 0.57, "gbit_per_cpu_s": 0.44, "kib_per_idle_conn": 212},
        "relay_phts": {"gbps_1": 0.56, "gbit_per_cpu_s": 0.43, "kib_per_idle_conn": 311},
        # issue 8
        "socks5_h2": {"gbps_1": 2.6, "gbit_per_cpu_s": 1.7, "kib_per_idle_conn": 232},
        "socks5_h2c": {"gbps_1": 2.6, "gbit_per_cpu_s": 1.7, "kib_per_idle_conn": 232},
        "http2": {"gbps_1": 3.0, "gbit_per_cpu_s": 2.0, "kib_per_idle_conn": 124},
        "relay_grpc": {"gbps_1": 2.5, "gbit_per_cpu_s": 1.6, "kib_per_idle_conn": 198},
        "relay_grpc_insecure": {"gbps_1": 2.9, "gbit_per_cpu_s": 1.8, "kib_per_idle_conn": 184},
        # issue 9 (GOST answered only 111 of 500 concurrent idle tunnels over h3)
        "relay_h3": {"gbps_1": 0.29, "gbit_per_cpu_s": 0.20, "conn_per_s": 1010, "kib_per_idle_conn": 52},
        # issue 19 (measured by the session that filed it: GOST 3.2.6 failed the wrk run)
        "relay_wt": {"gbps_1": 1.10, "gbit_per_cpu_s": 0.73},
        # issue 19: GOST's development line (x v0.15), the only one with MASQUE
        "masque": {"gbps_1": 1.58, "gbit_per_cpu_s": 1.00},
    },
}
json.dump(meta, open(sys.argv[1], "w"))
EOF
python_rc=$?
[ $python_rc = 0 ] || die_step "report: write metadata"
# descriptions are added here so that SCEN_DESC stays the single place to describe a scenario
for s in "${SCENARIOS[@]}"; do printf '%s\t%s\n' "$s" "${SCEN_DESC[$s]:-}"; done >"$TMP/desc.tsv"
"$PY" - "$META" "$TMP/desc.tsv" <<'EOF' || die_step "report: add descriptions"
import json, sys
m = json.load(open(sys.argv[1]))
m["descriptions"] = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2]) if "\t" in l)
json.dump(m, open(sys.argv[1], "w"))
EOF

echo
"$PY" "$HELPER" report "$RESULTS" "$OUT" "$META" || die_step "report: print table"
echo
echo "JSON: $OUT"
if [ "$FAILURES" -gt 0 ]; then
  log "$FAILURES step(s) failed (see above)"
  exit 1
fi
exit 0
}
