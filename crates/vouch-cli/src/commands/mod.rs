pub mod facilitator;
pub mod infer;
pub mod models;
pub mod pay;
pub mod replay;
pub mod serve;
pub mod verify;
