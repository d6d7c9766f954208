//! Measures the tensor proofs on MiniLM's feed-forward block (issue 18):
//! `cargo run --release -p vouch-zk --example tensor_report -- MODEL.onnx [LAYER]`.

use std::time::Instant;

use vouch_zk::tensor::{minilm, program};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: tensor_report MODEL.onnx [LAYER]")?;
    let layer: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let bytes = std::fs::read(path)?;
    let (a_bits, w_bits, gelu_bits, seq) = (8, 12, 14, 16);
    // A deterministic LayerNorm-like input: values of unit scale.
    let x: Vec<i64> = (0..seq * 384)
        .map(|i| {
            let u =
                ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
            ((u - 0.5) * 3.4 * (1 << a_bits) as f64).round() as i64
        })
        .collect();
    let t0 = Instant::now();
    let block = minilm::ffn_block(&bytes, layer, &x, seq, a_bits, w_bits, gelu_bits)?;
    let build_ms = t0.elapsed().as_millis();
    let inputs = vec![block.values.tensors[block.input].clone()];
    let outputs = vec![block.values.tensors[block.output].clone()];
    let t2 = Instant::now();
    let proof = program::prove(&block.key, &block.values, b"report", &block.gens)?;
    let prove_ms = t2.elapsed().as_millis();
    let t3 = Instant::now();
    program::verify(
        &block.key,
        &inputs,
        &outputs,
        b"report",
        &proof,
        &block.gens,
    )?;
    let verify_ms = t3.elapsed().as_millis();
    let proof_bytes = bincode::serialize(&proof)?.len();
    println!(
        "ffn layer {layer} seq {seq}: integer forward and weight commitment {build_ms} ms, key {} B, prove {prove_ms} ms, verify {verify_ms} ms, proof {proof_bytes} B",
        block.key.size_bytes()
    );
    Ok(())
}
