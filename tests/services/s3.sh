#!/usr/bin/env bash
# A real S3-compatible server for the tests: moto's server (PyPI `moto[server]`, pinned, installed
# into the test venv if missing), in memory, on a free loopback port, offline. It accepts any
# credentials; each test makes a bucket of its own (crates/vouch-store/tests/blobs.rs).
#
#   tests/services/s3.sh start   prints `VOUCH_TEST_S3_ENDPOINT=http://127.0.0.1:PORT` and the
#                                server's directory (pid file, log) as `VOUCH_TEST_S3_DIR=…`
#   tests/services/s3.sh stop DIR
set -euo pipefail
cmd="${1:-start}"
venv="${VOUCH_VENV:-$HOME/.cache/vouch/venv}"
# Pinned: the conditional writes the blob store relies on (`If-None-Match: *`) are checked
# against this version.
moto_version=5.2.6

case "$cmd" in
start)
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv" >&2
  fi
  if [[ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" != "$moto_version" ]] \
    || [[ ! -x "$venv/bin/moto_server" ]]; then
    "$venv/bin/pip" install -q "moto[server]==$moto_version" >&2
  fi
  dir="$(mktemp -d /tmp/vouch-s3.XXXXXX)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  # setsid: its own process group, so `stop` ends the server and nothing else.
  setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  for _ in $(seq 1 300); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
      echo "VOUCH_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
      echo "VOUCH_TEST_S3_DIR=$dir"
      exit 0
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  echo "moto_server did not answer on 127.0.0.1:$port:" >&2
  cat "$dir/log" >&2
  kill -- "-$(cat "$dir/pid")" 2>/dev/null || true
  rm -rf "$dir"
  exit 1
  ;;
stop)
  dir="${2:?stop needs the server directory}"
  if [[ -f "$dir/pid" ]]; then
    kill -- "-$(cat "$dir/pid")" 2>/dev/null || kill "$(cat "$dir/pid")" 2>/dev/null || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start | stop DIR" >&2
  exit 2
  ;;
esac
