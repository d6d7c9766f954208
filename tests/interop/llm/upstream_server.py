"""llama.cpp as a real upstream for Vouch's gateway mode (issue 15, item 8).

Serves one GGUF through the OpenAI-compatible server embedded in the PyPI `xllamacpp` wheel,
bound to 127.0.0.1 only. Prints one JSON line, {"url": "http://127.0.0.1:PORT/v1"}, once the
model is loaded, then serves until its standard input closes (the test holding it ended).

    usage: upstream_server.py MODEL.gguf [API_KEY]

With API_KEY, the server refuses requests that do not carry it as a bearer token.
"""

import json
import sys

import xllamacpp as xlc


def main():
    model = sys.argv[1]
    api_key = sys.argv[2] if len(sys.argv) > 2 else None
    params = xlc.CommonParams()
    params.model.path = model
    params.n_ctx = 2048
    params.n_parallel = 1
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.warmup = False
    params.hostnames = ["127.0.0.1"]
    params.use_jinja = True
    if api_key:
        params.api_keys = [api_key]
    server = xlc.Server(params)
    base = server.listening_address
    if not base.startswith("http://127.0.0.1:"):
        raise SystemExit(f"llama.cpp server not on loopback: {base}")
    print(json.dumps({"url": base.rstrip("/") + "/v1"}), flush=True)
    sys.stdin.read()  # until the test closes our stdin
    del server


if __name__ == "__main__":
    main()
