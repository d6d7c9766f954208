pub mod infer;
pub mod log;
pub mod models;
pub mod replay;
pub mod serve;
pub mod verify;
pub mod witness;
