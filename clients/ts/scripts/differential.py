#!/usr/bin/env python3
"""Differential test of the TypeScript verifier against `vouch verify --json`.

For each fixture bundle and a set of verifier options, makes random single-byte and
single-field tamperings, runs the Rust CLI on each (one process per case) and the TS verifier
on all of them (one process, JSON Lines), and reports every case where `ok` or `code` differ,
or, on success, the tiers, the proven checks, not_proven or the summary.
Exit status 1 on any disagreement.

  python3 scripts/differential.py [--bin /tmp/vouch-bin] [--cases N] [--seed S]
"""
import argparse, base64, json, os, random, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "test", "fixtures")
REPO = os.path.join(HERE, "..", "..", "..")


def leaves(v, path=()):
    yield path, v
    if isinstance(v, dict):
        for k, x in v.items():
            yield from leaves(x, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from leaves(x, path + (i,))


def set_path(v, path, new, delete=False):
    if not path:
        return new
    cur = v
    for p in path[:-1]:
        cur = cur[p]
    if delete:
        if isinstance(cur, dict):
            del cur[path[-1]]
        else:
            cur.pop(path[-1])
    else:
        cur[path[-1]] = new
    return v


def mutate_value(rng, x):
    if isinstance(x, bool):
        return rng.choice([not x, 1, None, "true"])
    if isinstance(x, int):
        return rng.choice([x + 1, x - 1, 0, -1, 2**32, 2**53 + 1, 2**64, float(x), float(x) + 0.5, str(x), None])
    if isinstance(x, float):
        return rng.choice([x * 2, -x, x + 1e-7, 3.4e39, 1e300, -0.0, float(int(x)), int(x), 2**63, str(x)])
    if isinstance(x, str):
        if not x:
            return rng.choice(["x", None, 0])
        i = rng.randrange(len(x))
        if rng.random() < 0.5:
            # Same-class character (hex for hex, base64 for base64): the shape stays valid, so
            # the change reaches the signature, proof, digest and evidence checks.
            alphabet = "0123456789abcdef" if x[i] in "0123456789abcdef" else \
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            return x[:i] + rng.choice([c for c in alphabet if c != x[i]] or ["x"]) + x[i + 1:]
        c = rng.choice("0123456789abcdefABCDEF+/=:-_ .x\u00e9")
        return rng.choice([x[:i] + c + x[i + 1:], x.upper(), x[:-1], x + "0", "", None, 7])
    if isinstance(x, list):
        return rng.choice([[], x + x[:1], x[:-1], None, {}])
    if isinstance(x, dict):
        y = dict(x)
        y["unknown_field"] = 1
        return rng.choice([y, {}, None, []])
    return rng.choice([0, "", [], {}])


def tamper_bytes(rng, raw):
    b = bytearray(raw)
    i = rng.randrange(len(b))
    b[i] = rng.choice([b[i] ^ (1 << rng.randrange(8)), rng.randrange(256), ord(rng.choice('0123456789abcdef"{}[],:'))])
    return base64.b64encode(bytes(b)).decode()


def tamper(rng, raw):
    if rng.random() < 0.4:
        return {"file_b64": tamper_bytes(rng, raw)}
    v = json.loads(raw)
    path, x = rng.choice(list(leaves(v))[1:])
    if rng.random() < 0.15:
        v = set_path(v, path, None, delete=True)
    else:
        v = set_path(v, path, mutate_value(rng, x))
    return {"file": v}


def rust(bin_, case, tmp):
    f = os.path.join(tmp, "bundle.json")
    with open(f, "wb") as fh:
        fh.write(base64.b64decode(case["file_b64"]) if "file_b64" in case else json.dumps(case["file"]).encode())
    args = [bin_, "verify", f, "--json"]
    o = case["options"]
    if o.get("trustKey"):
        args += ["--trust-key", o["trustKey"]]
    if o.get("logKey"):
        args += ["--log-key", o["logKey"]]
    for w in o.get("witnessKeys", []):
        args += ["--witness", w]
    if "witnessThreshold" in o:
        args += ["--witness-threshold", str(o["witnessThreshold"])]
    if o.get("tee", {}).get("allowSimulated"):
        args.append("--allow-simulated")
    if o.get("model_b64"):
        m = os.path.join(tmp, "model.onnx")
        open(m, "wb").write(base64.b64decode(o["model_b64"]))
        args += ["--model", m]
    if "inputs" in o:
        i = os.path.join(tmp, "inputs.json")
        json.dump(o["inputs"], open(i, "w"))
        args += ["--inputs", i]
    if "request" in o:
        r = os.path.join(tmp, "request.json")
        open(r, "w").write(o["request"])
        args += ["--request", r]
    if o.get("require"):
        args += ["--require", ",".join(o["require"])]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    d = json.loads(out)
    if d["ok"]:
        return True, None, ([t["tier"] for t in d["tiers"]], [p["check"] for p in d["proven"]], d["not_proven"], d["summary"])
    return False, d.get("code"), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("VOUCH_BIN", "/tmp/vouch-bin"))
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fixtures", default=FIX, help="bundles and keys.json, as make.sh writes them")
    a = ap.parse_args()
    fix = a.fixtures
    rng = random.Random(a.seed)
    keys = json.load(open(os.path.join(fix, "keys.json")))
    model = base64.b64encode(open(os.path.join(REPO, "models", "mlp.onnx"), "rb").read()).decode()
    inputs = json.load(open(os.path.join(fix, "mlp.input.json")))
    option_sets = [
        {},
        {"tee": {"allowSimulated": True}},
        {"trustKey": keys["node_key"], "tee": {"allowSimulated": True}, "inputs": inputs, "model_b64": model},
        {"logKey": keys["log_key"], "witnessKeys": keys["witness_keys"], "tee": {"allowSimulated": True}},
        {"logKey": keys["log_key"], "require": ["tee"], "tee": {"allowSimulated": True}},
    ]
    bundles = [open(os.path.join(fix, f), "rb").read() for f in sorted(os.listdir(fix)) if f.endswith(".bundle.json")]
    # The published chat vectors: an answer object, its bundle alone, and a streamed SSE body.
    vec = os.path.join(REPO, "crates", "vouch-verify", "tests", "vectors")
    chat1 = open(os.path.join(vec, "chat1.response.json"), "rb").read()
    # The node's own chat answers, when make.sh had a GGUF to serve.
    live_chat = [(f"{n}.response.json", f"{n}.request.json") for n in ["chat-tee"]] + [("chat-stream.sse", "chat-stream.request.json")]
    chat_files = [
        (open(os.path.join(fix, answer), "rb").read(), open(os.path.join(fix, request)).read())
        for answer, request in live_chat
        if os.path.exists(os.path.join(fix, answer))
    ] + [
        (chat1, open(os.path.join(vec, "chat1.request.json")).read()),
        (json.dumps(json.loads(chat1)["vouch"]).encode(), open(os.path.join(vec, "chat1.request.json")).read()),
        (open(os.path.join(vec, "chat2.sse"), "rb").read(), open(os.path.join(vec, "chat2.request.json")).read()),
    ]
    cases = []
    for n in range(a.cases):
        c = {"id": str(n)}
        if rng.random() < 0.25:
            raw, req = rng.choice(chat_files)
            c["options"] = rng.choice([{"request": req}, {}, {"request": req.replace("hello", "hullo")},
                                       {"request": req, "tee": {"allowSimulated": True}},
                                       {"request": req, "tee": {"allowSimulated": True}, "logKey": keys["log_key"]}])
            if raw.startswith(b"data:"):
                c["file_b64"] = base64.b64encode(raw).decode() if n % 5 == 0 else tamper_bytes(rng, raw)
            else:
                c.update({"file": json.loads(raw)} if n % 5 == 0 else tamper(rng, raw))
        else:
            raw = rng.choice(bundles)
            c["options"] = rng.choice(option_sets)
            c.update({"file": json.loads(raw)} if n < len(bundles) * 2 else tamper(rng, raw))
        c["full"] = True
        cases.append(c)
    with tempfile.TemporaryDirectory() as tmp:
        expected = [rust(a.bin, c, tmp) for c in cases]
    ts = subprocess.run(["node", os.path.join(HERE, "..", "bin", "vouch-verify-ts.mjs")],
                        input="".join(json.dumps(c) + "\n" for c in cases), capture_output=True, text=True, check=True)
    got = [json.loads(l) for l in ts.stdout.splitlines()]
    bad = 0
    codes = {}
    for c, (ok, code, report), g in zip(cases, expected, got):
        codes[code or "ok"] = codes.get(code or "ok", 0) + 1
        mine = (g["tiers"], g["proven"], g["not_proven"], g["summary"]) if g["ok"] else None
        if (ok, code, report) != (g["ok"], g["code"], mine):
            bad += 1
            if bad <= 20:
                print(f"DISAGREE case {c['id']}: rust ok={ok} code={code}, ts ok={g['ok']} code={g['code']}")
                if report != mine:
                    print("    rust report:", report)
                    print("    ts report:  ", mine)
                print("   ", json.dumps({k: v for k, v in c.items() if k != "options"})[:400], "options:", list(c["options"].keys()))
    print(f"{len(cases)} cases, {bad} disagreements; verdicts by code: {json.dumps(codes, sort_keys=True)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
