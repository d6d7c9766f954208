//! `vouch pay keygen|address|credit|balance`: a payer key for `vouch infer --pay-with`, and the
//! built-in ledger's balances (crediting needs the admin token).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use vouch_api::{Balance, CreditRequest, CreditResponse, InferRequest};
use vouch_core::Bundle;
use vouch_pay::PaymentRequired;
use vouch_pay::wire::{PAYMENT_REQUIRED_HEADER, PaymentRequiredV1};

use crate::Remote;
use crate::client::Api;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Write a fresh secp256k1 payer key (0x + 64 hex) to a new file, mode 0600.
    Keygen {
        /// Where to write it; an existing file is never overwritten.
        #[arg(long, default_value = "payer.key")]
        out: PathBuf,
    },
    /// Print the EVM address of a key file.
    Address { keyfile: PathBuf },
    /// Credit ADDRESS with AMOUNT (smallest token units) in the node's built-in ledger.
    Credit {
        address: String,
        amount: String,
        #[arg(long)]
        memo: Option<String>,
    },
    /// Show ADDRESS's balance in the node's built-in ledger.
    Balance { address: String },
}

pub fn run(cmd: Command, remote: &Remote) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Keygen { out } => {
            if out.exists() {
                bail!("{} exists; refusing to overwrite a key", out.display());
            }
            let (signer, text) = vouch_pay::payer::generate_key();
            vouch_attest::signer::write_secret_file(&out, text.as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("address: {}", signer.address());
            println!("key:     {} (mode 0600; keep it secret)", out.display());
        }
        Command::Address { keyfile } => {
            let signer = vouch_pay::payer::load_key(&keyfile)?;
            println!("{}", signer.address());
        }
        Command::Credit {
            address,
            amount,
            memo,
        } => {
            let api = Api::new(remote)?;
            let resp: CreditResponse = api.post_json_admin(
                &["v1", "pay", "credit"],
                &CreditRequest {
                    address,
                    amount,
                    memo,
                },
            )?;
            println!(
                "{}: balance {} ({})",
                resp.address,
                resp.balance,
                resp.display.as_deref().unwrap_or("")
            );
        }
        Command::Balance { address } => {
            let api = Api::new(remote)?;
            let resp: Balance = api.get(&["v1", "pay", "balance", &address])?;
            println!(
                "{}: balance {} ({})",
                resp.address, resp.balance, resp.display
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// POSTs an inference; if the node answers 402 and a key is given, pays the price it asks
/// (at most `max_price`) with that key and asks again, once.
pub fn infer_paying(
    api: &Api,
    body: &InferRequest,
    key: Option<&std::path::Path>,
    max_price: Option<&str>,
) -> anyhow::Result<(Bundle, reqwest::header::HeaderMap)> {
    const INFER: [&str; 2] = ["v1", "infer"];
    let first = api.post_json_raw(&INFER, body, &[])?;
    if first.status().as_u16() != 402 {
        let headers = first.headers().clone();
        return Ok((api.answer(first)?, headers));
    }
    let header = first
        .headers()
        .get(PAYMENT_REQUIRED_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = first.bytes()?;
    let Some(key) = key else {
        let price = serde_json::from_slice::<PaymentRequiredV1>(&bytes)
            .ok()
            .and_then(|b| b.accepts.into_iter().next())
            .map_or_else(|| "?".to_string(), |a| a.max_amount_required);
        bail!(
            "this node charges for this request ({price} smallest units, x402): pass --pay-with KEYFILE (make one with `vouch pay keygen`)"
        );
    };
    let signer = vouch_pay::payer::load_key(key)?;
    let required = PaymentRequired::from_response(header.as_deref(), &bytes)
        .map_err(|e| anyhow!("the node's 402 is not a valid x402 answer: {e}"))?;
    let limit = max_price
        .map(|m| vouch_pay::parse_amount(m.trim()).map_err(|e| anyhow!("--max-price: {e}")))
        .transpose()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let (name, value) = vouch_pay::payer::pay(&signer, &required, limit, now)?;
    let paid = api.post_json_raw(&INFER, body, &[(name, value.as_str())])?;
    let headers = paid.headers().clone();
    Ok((api.answer(paid)?, headers))
}
