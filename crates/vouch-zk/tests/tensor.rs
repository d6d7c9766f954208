//! The tensor proofs on the real MiniLM (issue 18): a feed-forward block of the exported model,
//! proven from the model file and verified from the model key alone, with its fixed-point error
//! against the float block stated.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use vouch_zk::tensor::{lookup, minilm, program};

/// The text model exported by scripts/setup-minilm.sh; CI sets VOUCH_REQUIRE_MINILM=1.
fn minilm_model() -> Option<Vec<u8>> {
    let required = std::env::var("VOUCH_REQUIRE_MINILM").is_ok_and(|v| v == "1");
    let path = std::env::var("VOUCH_MINILM")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            Some(PathBuf::from(std::env::var("HOME").ok()?).join(".cache/vouch/models/minilm.onnx"))
        });
    match path.filter(|p| p.exists()) {
        Some(p) => Some(std::fs::read(p).expect("read MiniLM")),
        None => {
            assert!(
                !required,
                "VOUCH_REQUIRE_MINILM=1 but the model is missing: run scripts/setup-minilm.sh"
            );
            eprintln!("note: MiniLM not exported; skipping (scripts/setup-minilm.sh)");
            None
        }
    }
}

/// Deterministic activations of unit scale, like a LayerNorm output.
fn sample_input(seq: usize, hidden: usize) -> Vec<f64> {
    (0..seq * hidden)
        .map(|i| {
            let u =
                ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
            (u - 0.5) * 3.4
        })
        .collect()
}

fn matmul(x: &[f64], w: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = b[j];
            for kk in 0..k {
                s += x[i * k + kk] * w[kk * n + j];
            }
            y[i * n + j] = s;
        }
    }
    y
}

#[test]
fn minilm_feed_forward_block_proves_from_the_model_and_verifies_from_the_key_alone() {
    let Some(bytes) = minilm_model() else { return };
    let (seq, a_bits) = (16, 8);
    let x = sample_input(seq, 384);
    let xq = minilm::quantise(&x, a_bits).unwrap();
    let block = minilm::ffn_block(&bytes, 0, &xq, seq, a_bits, 12, 14).unwrap();
    // The verifier's whole knowledge of the model: the key, small, as bytes.
    let key_bytes = bincode::serialize(&block.key).unwrap();
    assert!(
        key_bytes.len() < 1 << 20,
        "key of {} bytes",
        key_bytes.len()
    );
    let key: program::ModelKey = bincode::deserialize(&key_bytes).unwrap();

    let inputs = vec![block.values.tensors[block.input].clone()];
    let outputs = vec![block.values.tensors[block.output].clone()];
    let proof = program::prove(&block.key, &block.values, b"receipt", &block.gens).unwrap();
    program::verify(&key, &inputs, &outputs, b"receipt", &proof, &block.gens).unwrap();

    // Another input does not verify with these outputs.
    let mut other = inputs.clone();
    other[0][7] += 1;
    assert!(program::verify(&key, &other, &outputs, b"receipt", &proof, &block.gens).is_err());

    // Fixed-point error against the float block on the same (dequantised) input.
    let xf: Vec<f64> = xq.iter().map(|&v| v as f64 / 256.0).collect();
    let inits = minilm::Initializers::read(&bytes).unwrap();
    let get = |n: &str| inits.get(n).unwrap().1;
    let p = "encoder.layer.0";
    let h = matmul(
        &xf,
        &get(&format!("{p}.intermediate.dense.weight_t")),
        &get(&format!("{p}.intermediate.dense.bias")),
        seq,
        384,
        1536,
    );
    let g: Vec<f64> = h.iter().map(|&v| lookup::gelu(v)).collect();
    let y = matmul(
        &g,
        &get(&format!("{p}.output.dense.weight_t")),
        &get(&format!("{p}.output.dense.bias")),
        seq,
        1536,
        384,
    );
    let out = &outputs[0];
    let mut max_err = 0f64;
    let mut max_abs = 0f64;
    for i in 0..seq {
        for j in 0..384 {
            let got = out[i * 512 + j] as f64 / 256.0;
            max_err = max_err.max((got - y[i * 384 + j]).abs());
            max_abs = max_abs.max(y[i * 384 + j].abs());
        }
    }
    eprintln!(
        "feed-forward block, 2^-8 fixed point: max |error| {max_err:.4} over outputs up to {max_abs:.2}"
    );
    // Activations at 2^-8, weights at 2^-12: measured 0.024 (six quanta of 2^-8) over outputs up
    // to 30; weights at 2^-8 gave 0.27.
    assert!(max_err < 0.05, "max error {max_err}");
}

/// The reference vector of models/text/minilm_fixed.py (the integer specification, in numpy):
/// written by running it with the venv scripts/setup-minilm.sh makes.
fn reference_vector(model: &std::path::Path) -> Option<serde_json::Value> {
    let required = std::env::var("VOUCH_REQUIRE_MINILM").is_ok_and(|v| v == "1");
    let venv = std::env::var("VOUCH_VENV")
        .map(PathBuf::from)
        .ok()
        .or_else(|| Some(PathBuf::from(std::env::var("HOME").ok()?).join(".cache/vouch/venv")))?;
    let python = venv.join("bin/python");
    if !python.exists() {
        assert!(
            !required,
            "VOUCH_REQUIRE_MINILM=1 but the venv is missing: run scripts/setup-ort.sh"
        );
        return None;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::env::temp_dir().join(format!("minilm_vec_{}.json", std::process::id()));
    let status = std::process::Command::new(python)
        .arg(repo.join("models/text/minilm_fixed.py"))
        .args(["--A", "12", "--W", "12", "--model"])
        .arg(model)
        .arg("--dump")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run minilm_fixed.py");
    assert!(status.success(), "minilm_fixed.py failed");
    let v = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(out);
    Some(v)
}

fn minilm_path() -> Option<PathBuf> {
    std::env::var("VOUCH_MINILM")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            Some(PathBuf::from(std::env::var("HOME").ok()?).join(".cache/vouch/models/minilm.onnx"))
        })
        .filter(|p| p.exists())
}

#[test]
fn whole_minilm_matches_the_integer_specification_and_proves_from_the_key_alone() {
    let Some(bytes) = minilm_model() else { return };
    let Some(vector) = minilm_path().and_then(|p| reference_vector(&p)) else {
        return;
    };
    let ids: Vec<i64> = vector["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let mask: Vec<i64> = vector["attention_mask"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let n = mask.iter().filter(|&&m| m == 1).count();
    let want: Vec<i64> = vector["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let p = minilm::fixed();
    let m = minilm::model(&bytes, &ids[..n], &p).unwrap();
    // Bit for bit the specification's integers (and the same exp and GELU tables).
    assert_eq!(
        &m.values[m.output][..384],
        &want[..],
        "the Rust program and the Python specification differ"
    );
    let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    match (
        lookup::TableSpec::exp(p.a_bits, p.exp_out_bits, p.exp_domain_bits),
        lookup::TableSpec::gelu(p.gelu_in_bits, p.a_bits, p.gelu_domain_bits),
    ) {
        (lookup::TableSpec::Exp { digest: e, .. }, lookup::TableSpec::Gelu { digest: g, .. }) => {
            assert_eq!(hex(e), vector["tables_sha256"]["exp"].as_str().unwrap());
            assert_eq!(hex(g), vector["tables_sha256"]["gelu"].as_str().unwrap());
        }
        _ => unreachable!(),
    }
    // Proved with the weights, verified with the key alone (serialised, as a verifier gets it).
    let gens = vouch_zk::tensor::commit::Generators::new(program::MAX_COL_VARS);
    let key = program::ModelKey::commit(m.program.clone(), &m.weights, &gens).unwrap();
    let key: program::ModelKey = bincode::deserialize(&bincode::serialize(&key).unwrap()).unwrap();
    let vals = program::Values::new(&m.program, m.values.clone()).unwrap();
    let proof = program::prove(&key, &vals, b"receipt", &gens).unwrap();
    let inputs: Vec<Vec<i64>> = m.inputs.iter().map(|&i| m.values[i].clone()).collect();
    let outputs = vec![m.values[m.output].clone()];
    program::verify(&key, &inputs, &outputs, b"receipt", &proof, &gens).unwrap();
    // Another sentence's ids, or another embedding, do not verify with this proof.
    let mut other = inputs.clone();
    let row = other[0].len() / 16;
    let at = (row..2 * row).find(|&i| other[0][i] == 1).unwrap();
    other[0].swap(at, if at + 1 < 2 * row { at + 1 } else { at - 1 });
    assert!(program::verify(&key, &other, &outputs, b"receipt", &proof, &gens).is_err());
    let mut wrong = outputs.clone();
    wrong[0][3] += 1;
    assert!(program::verify(&key, &inputs, &wrong, b"receipt", &proof, &gens).is_err());
}
