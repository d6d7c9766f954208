//! No code: this crate holds the architecture tests (`tests/layering.rs`), which read the
//! workspace through `cargo metadata` and `cargo tree` and fail when a crate depends on a layer
//! above it, or when the offline verifier's dependency closure picks up a runtime, a database,
//! a network client, an inference engine or a producer/prover half.
//!
//! It is a crate of its own so the rules sit in one place that is about the whole workspace,
//! and so `cargo_metadata` stays out of the dev-dependencies of the crates it judges.
