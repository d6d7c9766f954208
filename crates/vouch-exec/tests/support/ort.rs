//! ONNX Runtime for the engine tests, when its library is present. CI sets VOUCH_REQUIRE_ORT=1
//! so that a missing library fails the run instead of silently testing only tract.

use std::path::PathBuf;

use vouch_exec::ort_engine::OrtEngine;

/// The engine with its process-wide arena capped at `arena_bytes` (the first load in a test
/// process fixes the cap).
pub fn ort_with_arena(arena_bytes: usize) -> Option<OrtEngine> {
    let path = std::env::var("ORT_DYLIB_PATH")
        .ok()
        .map(PathBuf::from)
        .or_else(|| {
            let p = PathBuf::from(std::env::var("HOME").ok()?)
                .join(".cache/vouch/ort/libonnxruntime.so");
            p.exists().then_some(p)
        });
    let required = std::env::var("VOUCH_REQUIRE_ORT").is_ok_and(|v| v == "1");
    match path.map(|p| OrtEngine::load(&p, 1, arena_bytes)) {
        Some(Ok(e)) => Some(e),
        Some(Err(e)) => panic!("ONNX Runtime failed to load: {e}"),
        None if required => {
            panic!("VOUCH_REQUIRE_ORT=1 but no ONNX Runtime library: run scripts/setup-ort.sh")
        }
        None => {
            eprintln!("note: ONNX Runtime library not found; testing tract only");
            None
        }
    }
}
