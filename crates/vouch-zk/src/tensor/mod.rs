//! The tensor proof system: sumcheck-based proofs for tensor programs (transformers), with the
//! weights committed once per model so that a verifier needs only a small key, never the model.
//!
//! Where the R1CS tier (`circuit`, `snark`) writes every multiply-accumulate into constraints with
//! the weights as constants, this system proves each operator as a polynomial identity checked by
//! sumcheck at a random point (a matrix product costs the prover time linear in its operands and
//! the verifier a logarithmic number of rounds), and non-linear functions and range checks by logUp
//! lookups. All claims on committed tensors end in one batched Hyrax opening per size class.

pub mod builder;
pub mod commit;
pub mod field;
pub mod lookup;
pub mod minilm;
pub mod program;
pub mod relation;
pub mod sumcheck;
pub mod system;
pub mod transcript;
