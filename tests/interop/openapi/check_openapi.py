"""Checks a live node's /openapi.json with tools that are not ours.

Usage: check_openapi.py BASE_URL ADMIN_TOKEN MODELS_DIR

1. openapi-spec-validator accepts the document, every operation has a unique operationId, and
   every 2xx answer of every operation names its content and schema.
2. openapi-python-client generates a client from it (into a temporary directory); that client
   registers models/mlp_small.onnx, runs an inference with tiers ["signed", "zk"], and follows
   the proof job (GET /v1/proofs/{id}) until it is done, every answer parsed into the
   generated types.

Any failure raises: generation failing is a failure of the document, never a skip.
"""

import importlib
import io
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

from openapi_spec_validator import validate

TERMINAL = {"done", "failed", "cancelled"}


def check_document(spec):
    validate(spec)
    seen = {}
    operations = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in {"get", "put", "post", "delete", "patch"}:
                continue
            operations += 1
            where = f"{method.upper()} {path}"
            op_id = op.get("operationId")
            assert op_id, f"{where} has no operationId"
            assert op_id not in seen, f"{where} and {seen[op_id]} share operationId {op_id!r}"
            seen[op_id] = where
            ok = {s: r for s, r in op["responses"].items() if s.startswith("2")}
            assert ok, f"{where} documents no 2xx answer"
            for status, resp in ok.items():
                content = resp.get("content")
                assert content, f"{where} {status} names no content type"
                for ctype, media in content.items():
                    assert "schema" in media, f"{where} {status} {ctype} has no schema"
    schemas = spec.get("components", {}).get("schemas", {})
    print(f"openapi: valid; {operations} operations, {len(schemas)} schemas")
    return schemas


def generate(spec, tmp):
    spec_path = tmp / "openapi.json"
    spec_path.write_text(json.dumps(spec))
    # No formatter hooks (ruff): the generated code is imported, not kept.
    config = tmp / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))
    out = tmp / "client"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec_path),
            "--output-path",
            str(out),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
    )
    report = run.stdout + run.stderr
    print(report)
    assert run.returncode == 0, f"openapi-python-client failed ({run.returncode})"
    # Anything it could not read is a failure, with one exception: the witness protocol's
    # `POST /log/cosignature` takes a `text/plain` line (C2SP), a body this generator skips.
    assert "Unable to" not in report, "openapi-python-client could not read part of the document"
    skipped = re.findall(r"WARNING parsing (\S+ \S+)", report)
    assert set(skipped) <= {"POST /log/cosignature"}, f"endpoints not generated: {skipped}"
    sys.path.insert(0, str(tmp))
    importlib.invalidate_caches()
    return importlib.import_module("client")


def use_client(pkg, base, token, models):
    m = importlib.import_module("client.models")
    types = importlib.import_module("client.types")
    client = pkg.AuthenticatedClient(base_url=base, token=token, timeout=120.0)

    register = importlib.import_module("client.api.models.register_model")
    onnx = (models / "mlp_small.onnx").read_bytes()

    r = register.sync_detailed(
        client=client,
        body=types.File(payload=io.BytesIO(onnx), mime_type="application/octet-stream"),
        name="mlp_small",
        version="1",
    )
    assert r.status_code in (200, 201), (r.status_code, r.content)
    reg = r.parsed
    assert isinstance(reg, m.RegisterResponse), type(reg)
    digest = reg.model.digest
    assert digest.startswith("sha256:"), digest
    assert reg.name.name == "mlp_small" and reg.name.version == "1"
    print(f"registered {digest} ({reg.model.engine}), zk {type(reg.zk).__name__}")

    # Registration's zk analysis may outlast its bounded wait: ask until it has an answer.
    get_model = importlib.import_module("client.api.models.get_model")
    for _ in range(600):
        view = get_model.sync(client=client, reference="mlp_small")
        assert isinstance(view, m.ModelView), view
        if str(view.zk.status) != "analysing":
            break
        time.sleep(0.2)
    assert str(view.zk.status) == "available", view.zk.to_dict()
    assert view.zk.vk_digest.startswith("sha256:"), view.zk.to_dict()

    inputs = json.loads((models / "mlp_small.input.json").read_text())
    infer = importlib.import_module("client.api.inference.infer")
    body = m.InferRequest.from_dict(
        {"model": "mlp_small", "inputs": inputs, "tiers": ["signed", "zk"]}
    )
    r = infer.sync_detailed(client=client, body=body)
    assert r.status_code == 200, (r.status_code, r.content)
    bundle = r.parsed
    assert isinstance(bundle, m.Bundle), type(bundle)
    assert bundle.format_ == "vouch.bundle.v1", bundle.format_
    assert bundle.receipt.model == digest
    assert sorted(str(t) for t in bundle.receipt.tiers) == ["signed", "zk"], bundle.receipt.tiers
    assert bundle.signature.alg == "ed25519"
    # Evidence entries are JSON values in the bundle; the document names their types.
    job_ref = m.ZkJobRef.from_dict(bundle.evidence["zk_job"])
    assert str(job_ref.status) == "queued", job_ref.to_dict()
    log = m.LogEvidence.from_dict(bundle.evidence["log"])
    print(f"inferred; receipt logged at {log.index}; proof job {job_ref.id}")

    get_job = importlib.import_module("client.api.proofs.get_proof_job")
    for _ in range(60):
        job = get_job.sync(client=client, id=job_ref.id, wait="10s")
        assert isinstance(job, m.ProofJob), job
        if str(job.status) in TERMINAL:
            break
    assert str(job.status) == "done", job.to_dict()
    assert job.id == job_ref.id
    assert job.receipt == job_ref.receipt
    assert job.model == digest
    zk = job.evidence.zk.to_dict()
    assert zk, "a done job without evidence.zk"
    print(f"proof job done in {job.prove_ms} ms; evidence.zk has {sorted(zk)}")

    # An unknown job is a typed error answer.
    r = get_job.sync_detailed(client=client, id="00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404, r.status_code
    assert isinstance(r.parsed, m.ErrorBody) and str(r.parsed.error.code) == "proof_not_found", r.content


def main():
    base, token, models = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    with urllib.request.urlopen(base + "/openapi.json") as f:
        spec = json.load(f)
    check_document(spec)
    with tempfile.TemporaryDirectory() as d:
        pkg = generate(spec, pathlib.Path(d))
        use_client(pkg, base, token, models)
    print("openapi: OK")


if __name__ == "__main__":
    main()
