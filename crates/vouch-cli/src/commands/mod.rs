pub mod infer;
pub mod models;
pub mod proofs;
pub mod replay;
pub mod serve;
pub mod verify;
