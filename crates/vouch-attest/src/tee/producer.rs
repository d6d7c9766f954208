//! Evidence producers: one trait, chosen by configuration or detected at start-up.
//!
//! - `aws-nitro`: the Nitro Secure Module at `/dev/nsm` (cargo feature `nitro-nsm`, Linux).
//! - `configfs-tsm`: Linux's `configfs-tsm` report interface
//!   (`/sys/kernel/config/tsm/report`), which fronts Intel TDX (`tdx_guest`) and AMD SEV-SNP
//!   (`sev_guest`) alike.
//! - `simulated`: development only, see [`super::simulated`].
//!
//! `auto` never falls back to `simulated`: a node configured for hardware that finds none
//! refuses to start rather than quietly offer weaker evidence. Producers block (device ioctl,
//! file reads that make the platform sign); servers call them off the async executor.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use vouch_core::NodeKey;

use super::evidence::{BindingInfo, Platform, SnpCerts, TeeEvidence};
use super::simulated::SimulatedProducer;
use super::{TeeError, binding, format_time};

/// Where Linux mounts the configfs-tsm report interface.
pub const CONFIGFS_TSM_REPORT: &str = "/sys/kernel/config/tsm/report";
/// The Nitro Secure Module device.
pub const NSM_DEVICE: &str = "/dev/nsm";

/// Makes evidence whose report data commits to a node key (and a nonce).
pub trait EvidenceProducer: Send + Sync {
    /// What kind of evidence this producer makes.
    fn platform(&self) -> Platform;
    /// Evidence binding `node_key` and, when a verifier supplied one, `nonce` (1–64 bytes).
    fn attest(&self, node_key: &NodeKey, nonce: Option<&[u8]>) -> Result<TeeEvidence, TeeError>;
}

/// Which producer to use (`tee.producer` in `vouch.toml`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProducerKind {
    /// No `tee` tier on this node.
    #[default]
    None,
    /// Detect hardware; fail if there is none.
    Auto,
    AwsNitro,
    ConfigfsTsm,
    Simulated,
}

/// Producer settings (`[tee]` in `vouch.toml`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerConfig {
    pub producer: ProducerKind,
    /// configfs-tsm report directory; default [`CONFIGFS_TSM_REPORT`].
    pub configfs_tsm_path: Option<PathBuf>,
    /// Intel DCAP collateral for this platform (dcap-qvl `QuoteCollateralV3` JSON, e.g. from a
    /// PCCS), attached to TDX evidence so verifiers need no network. Refresh it before it
    /// expires (about 30 days).
    pub intel_collateral_file: Option<PathBuf>,
    /// VCEK certificate (DER) for SEV-SNP hosts that do not supply a certificate table.
    pub snp_vcek_file: Option<PathBuf>,
    /// ASK certificate (DER); optional, the pinned ASKs are used otherwise.
    pub snp_ask_file: Option<PathBuf>,
}

/// The hardware producer this machine offers, if any.
pub fn detect(cfg: &ProducerConfig) -> Option<ProducerKind> {
    if Path::new(NSM_DEVICE).exists() {
        return Some(ProducerKind::AwsNitro);
    }
    let tsm = cfg
        .configfs_tsm_path
        .clone()
        .unwrap_or_else(|| PathBuf::from(CONFIGFS_TSM_REPORT));
    tsm.is_dir().then_some(ProducerKind::ConfigfsTsm)
}

/// Builds the configured producer; `Ok(None)` when the `tee` tier is off.
pub fn select_producer(
    cfg: &ProducerConfig,
) -> Result<Option<Box<dyn EvidenceProducer>>, TeeError> {
    let kind = match cfg.producer {
        ProducerKind::None => return Ok(None),
        ProducerKind::Auto => detect(cfg).ok_or_else(|| {
            TeeError::Unavailable(format!(
                "no TEE hardware found (no {NSM_DEVICE}, no configfs-tsm at {}); set the producer to \
                 \"simulated\" for development",
                cfg.configfs_tsm_path.as_deref().unwrap_or(Path::new(CONFIGFS_TSM_REPORT)).display()
            ))
        })?,
        k => k,
    };
    Ok(Some(match kind {
        ProducerKind::AwsNitro => Box::new(nsm::NsmProducer::open()?),
        ProducerKind::ConfigfsTsm => Box::new(ConfigfsTsmProducer::open(cfg)?),
        ProducerKind::Simulated => Box::new(SimulatedProducer::new()?),
        ProducerKind::None | ProducerKind::Auto => return Ok(None),
    }))
}

fn now_text() -> String {
    format_time(time::OffsetDateTime::from(SystemTime::now()))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, TeeError> {
    std::fs::read(path)
        .map_err(|e| TeeError::Unavailable(format!("cannot read {what} {}: {e}", path.display())))
}

#[cfg(all(feature = "nitro-nsm", target_os = "linux"))]
mod nsm {
    use aws_nitro_enclaves_nsm_api::api::{Request, Response};
    use aws_nitro_enclaves_nsm_api::driver::{nsm_exit, nsm_init, nsm_process_request};
    use nitro_attest::ByteBuf;
    use std::sync::Mutex;

    use super::*;

    /// Asks the Nitro Secure Module for attestation documents.
    pub struct NsmProducer {
        fd: Mutex<i32>,
    }

    impl NsmProducer {
        pub fn open() -> Result<Self, TeeError> {
            let fd = nsm_init();
            if fd < 0 {
                return Err(TeeError::Unavailable(format!(
                    "cannot open {NSM_DEVICE}: not inside a Nitro Enclave?"
                )));
            }
            Ok(NsmProducer { fd: Mutex::new(fd) })
        }
    }

    impl Drop for NsmProducer {
        fn drop(&mut self) {
            if let Ok(fd) = self.fd.lock() {
                nsm_exit(*fd);
            }
        }
    }

    impl EvidenceProducer for NsmProducer {
        fn platform(&self) -> Platform {
            Platform::AwsNitro
        }

        fn attest(
            &self,
            node_key: &NodeKey,
            nonce: Option<&[u8]>,
        ) -> Result<TeeEvidence, TeeError> {
            let report_data = binding::report_data(node_key, nonce)?;
            let fd = self
                .fd
                .lock()
                .map_err(|_| TeeError::Producer("NSM handle poisoned".into()))?;
            let request = Request::Attestation {
                user_data: Some(ByteBuf::from(report_data.to_vec())),
                nonce: nonce.map(|n| ByteBuf::from(n.to_vec())),
                public_key: Some(ByteBuf::from(binding::ed25519_spki_der(node_key))),
            };
            match nsm_process_request(*fd, request) {
                Response::Attestation { document } => Ok(TeeEvidence::new(
                    Platform::AwsNitro,
                    &document,
                    BindingInfo::new(*node_key, nonce),
                    now_text(),
                )),
                Response::Error(code) => Err(TeeError::Producer(format!(
                    "NSM refused the attestation: {code:?}"
                ))),
                other => Err(TeeError::Producer(format!(
                    "unexpected NSM response {other:?}"
                ))),
            }
        }
    }
}

#[cfg(not(all(feature = "nitro-nsm", target_os = "linux")))]
mod nsm {
    use super::*;

    /// Stand-in when this build has no NSM support: says how to get it.
    pub enum NsmProducer {}

    impl NsmProducer {
        pub fn open() -> Result<Self, TeeError> {
            Err(TeeError::Unavailable(
                "this build has no Nitro support: build vouch-attest with the `nitro-nsm` feature on Linux".into(),
            ))
        }
    }

    impl EvidenceProducer for NsmProducer {
        fn platform(&self) -> Platform {
            match *self {}
        }
        fn attest(&self, _: &NodeKey, _: Option<&[u8]>) -> Result<TeeEvidence, TeeError> {
            match *self {}
        }
    }
}

/// Intel TDX or AMD SEV-SNP through Linux's configfs-tsm: create a report entry, write the
/// 64-byte binding to `inblob`, read the signed `outblob` (and SNP's `auxblob` certificates).
pub struct ConfigfsTsmProducer {
    dir: PathBuf,
    platform: Platform,
    intel_collateral: Option<serde_json::Value>,
    snp_vcek: Option<Vec<u8>>,
    snp_ask: Option<Vec<u8>>,
    lock: std::sync::Mutex<u64>,
}

impl ConfigfsTsmProducer {
    /// Opens the interface, learns the provider, and loads the stored collateral the provider
    /// needs, so a misconfiguration fails at start-up rather than on the first request.
    pub fn open(cfg: &ProducerConfig) -> Result<Self, TeeError> {
        let dir = cfg
            .configfs_tsm_path
            .clone()
            .unwrap_or_else(|| PathBuf::from(CONFIGFS_TSM_REPORT));
        if !dir.is_dir() {
            return Err(TeeError::Unavailable(format!(
                "no configfs-tsm report interface at {}",
                dir.display()
            )));
        }
        let entry = Entry::create(&dir, "vouch-probe")?;
        let provider = entry.read_text("provider")?;
        drop(entry);
        let platform = match provider.as_str() {
            "tdx_guest" => Platform::IntelTdx,
            "sev_guest" => Platform::AmdSevSnp,
            other => {
                return Err(TeeError::Unavailable(format!(
                    "configfs-tsm provider {other:?} is not supported (expected tdx_guest or sev_guest)"
                )));
            }
        };
        let intel_collateral = match &cfg.intel_collateral_file {
            Some(p) => Some(
                serde_json::from_slice(&read_file(p, "Intel collateral")?).map_err(|e| {
                    TeeError::Unavailable(format!("{} is not JSON: {e}", p.display()))
                })?,
            ),
            None if platform == Platform::IntelTdx => {
                return Err(TeeError::Unavailable(
                    "TDX evidence needs stored Intel collateral so verifiers need no network: set \
                     intel_collateral_file (QuoteCollateralV3 JSON from a PCCS)"
                        .into(),
                ));
            }
            None => None,
        };
        let snp_vcek = cfg
            .snp_vcek_file
            .as_deref()
            .map(|p| read_file(p, "VCEK"))
            .transpose()?;
        let snp_ask = cfg
            .snp_ask_file
            .as_deref()
            .map(|p| read_file(p, "ASK"))
            .transpose()?;
        Ok(ConfigfsTsmProducer {
            dir,
            platform,
            intel_collateral,
            snp_vcek,
            snp_ask,
            lock: Default::default(),
        })
    }
}

impl EvidenceProducer for ConfigfsTsmProducer {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn attest(&self, node_key: &NodeKey, nonce: Option<&[u8]>) -> Result<TeeEvidence, TeeError> {
        let report_data = binding::report_data(node_key, nonce)?;
        let mut counter = self
            .lock
            .lock()
            .map_err(|_| TeeError::Producer("configfs-tsm lock poisoned".into()))?;
        *counter += 1;
        let entry = Entry::create(
            &self.dir,
            &format!("vouch-{}-{}", std::process::id(), *counter),
        )?;
        let before = entry.read_text("generation")?;
        entry.write("inblob", &report_data)?;
        let out = entry.read("outblob")?;
        let after = entry.read_text("generation")?;
        // Another writer between our write and read would have changed the report under us.
        let (b, a) = (before.parse::<u64>().ok(), after.parse::<u64>().ok());
        if a != b.map(|b| b + 1) {
            return Err(TeeError::Producer(format!(
                "configfs-tsm generation went from {before} to {after}: a concurrent writer changed the report"
            )));
        }
        let produced_at = now_text();
        let mut ev = TeeEvidence::new(
            self.platform,
            &out,
            BindingInfo::new(*node_key, nonce),
            produced_at.clone(),
        );
        match self.platform {
            Platform::IntelTdx => {
                ev.collateral = self.intel_collateral.clone();
                ev.collateral_time = Some(produced_at);
            }
            _ => {
                let aux = entry.read("auxblob").unwrap_or_default();
                let table = parse_cert_table(&aux)?;
                let vcek = table.vcek.or_else(|| self.snp_vcek.clone()).ok_or_else(|| {
                    TeeError::Producer(
                        "the host supplied no VCEK in the certificate table and snp_vcek_file is not set".into(),
                    )
                })?;
                let ask = table.ask.or_else(|| self.snp_ask.clone());
                ev.certs = Some(snp_certs(&vcek, ask.as_deref()));
            }
        }
        Ok(ev)
    }
}

pub(crate) fn snp_certs(vcek: &[u8], ask: Option<&[u8]>) -> SnpCerts {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    SnpCerts {
        vcek: b64.encode(vcek),
        ask: ask.map(|a| b64.encode(a)),
    }
}

/// One configfs-tsm report entry, removed when dropped.
struct Entry {
    path: PathBuf,
}

impl Entry {
    fn create(dir: &Path, name: &str) -> Result<Self, TeeError> {
        let path = dir.join(name);
        std::fs::create_dir(&path).map_err(|e| {
            TeeError::Producer(format!(
                "cannot create configfs-tsm entry {}: {e}",
                path.display()
            ))
        })?;
        Ok(Entry { path })
    }

    fn read(&self, attr: &str) -> Result<Vec<u8>, TeeError> {
        let p = self.path.join(attr);
        std::fs::read(&p)
            .map_err(|e| TeeError::Producer(format!("cannot read {}: {e}", p.display())))
    }

    fn read_text(&self, attr: &str) -> Result<String, TeeError> {
        Ok(String::from_utf8_lossy(&self.read(attr)?)
            .trim()
            .to_string())
    }

    fn write(&self, attr: &str, bytes: &[u8]) -> Result<(), TeeError> {
        let p = self.path.join(attr);
        std::fs::write(&p, bytes)
            .map_err(|e| TeeError::Producer(format!("cannot write {}: {e}", p.display())))
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The certificates an SEV-SNP host hands over in the GHCB certificate table.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CertTable {
    pub vcek: Option<Vec<u8>>,
    pub ask: Option<Vec<u8>>,
    pub ark: Option<Vec<u8>>,
}

const GUID_VCEK: [u8; 16] = guid(
    0x63da758d,
    0xe664,
    0x4564,
    [0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd],
);
const GUID_ASK: [u8; 16] = guid(
    0x4ab7b379,
    0xbbac,
    0x4fe4,
    [0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82],
);
const GUID_ARK: [u8; 16] = guid(
    0xc0b406a4,
    0xa803,
    0x4952,
    [0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae],
);

const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_be_bytes();
    let b = b.to_be_bytes();
    let c = c.to_be_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// Parses the GHCB certificate table: 24-byte entries (GUID, offset u32 LE, length u32 LE from
/// the table start) ending with an all-zero GUID. Written here, bounds-checked, because the
/// `sev` crate's parser follows the offsets through raw pointers without checking them.
pub fn parse_cert_table(bytes: &[u8]) -> Result<CertTable, TeeError> {
    let mut out = CertTable::default();
    let bad = |m: String| TeeError::Producer(format!("SEV-SNP certificate table: {m}"));
    let mut pos = 0usize;
    loop {
        let Some(entry) = bytes.get(pos..pos + 24) else {
            if bytes.is_empty() {
                return Ok(out);
            }
            return Err(bad("no terminating entry".into()));
        };
        let g: [u8; 16] = entry[..16]
            .try_into()
            .map_err(|_| bad("short entry".into()))?;
        if g == [0; 16] {
            return Ok(out);
        }
        let off = u32::from_le_bytes([entry[16], entry[17], entry[18], entry[19]]) as usize;
        let len = u32::from_le_bytes([entry[20], entry[21], entry[22], entry[23]]) as usize;
        let data = off
            .checked_add(len)
            .and_then(|end| bytes.get(off..end))
            .ok_or_else(|| {
                bad(format!(
                    "entry at {pos} points outside the table ({off}+{len})"
                ))
            })?
            .to_vec();
        match g {
            GUID_VCEK => out.vcek = Some(data),
            GUID_ASK => out.ask = Some(data),
            GUID_ARK => out.ark = Some(data),
            _ => {}
        }
        pos += 24;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Builds a table the way the GHCB specification lays it out.
    pub(crate) fn table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
        let header = 24 * (entries.len() + 1);
        let mut out = Vec::new();
        let mut data = Vec::new();
        for (g, d) in entries {
            out.extend_from_slice(g);
            out.extend_from_slice(&((header + data.len()) as u32).to_le_bytes());
            out.extend_from_slice(&(d.len() as u32).to_le_bytes());
            data.extend_from_slice(d);
        }
        out.extend_from_slice(&[0; 24]);
        out.extend(data);
        out
    }

    #[test]
    fn guids_match_the_sev_crates_names() {
        // The sev crate spells the GUIDs as text; ours are bytes in RFC 4122 order.
        let text = |g: [u8; 16]| {
            let h = hex::encode(g);
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        };
        assert_eq!(
            text(GUID_VCEK),
            sev::firmware::host::CertType::VCEK.to_string()
        );
        assert_eq!(
            text(GUID_ASK),
            sev::firmware::host::CertType::ASK.to_string()
        );
        assert_eq!(
            text(GUID_ARK),
            sev::firmware::host::CertType::ARK.to_string()
        );
    }

    #[test]
    fn cert_table_round_trips_and_rejects_bad_offsets() {
        let t = table(&[
            (GUID_ASK, b"ask-bytes"),
            (GUID_VCEK, b"vcek"),
            ([7; 16], b"other"),
        ]);
        let parsed = parse_cert_table(&t).unwrap();
        assert_eq!(parsed.vcek.as_deref(), Some(&b"vcek"[..]));
        assert_eq!(parsed.ask.as_deref(), Some(&b"ask-bytes"[..]));
        assert_eq!(parsed.ark, None);
        assert_eq!(parse_cert_table(&[]).unwrap(), CertTable::default());

        let mut bad = t.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_cert_table(&bad).is_err());
        assert!(parse_cert_table(&t[..30]).is_err());
    }

    #[test]
    fn none_selects_nothing_and_auto_never_falls_back_to_simulated() {
        let cfg = ProducerConfig::default();
        assert!(select_producer(&cfg).unwrap().is_none());
        let cfg = ProducerConfig {
            producer: ProducerKind::Auto,
            configfs_tsm_path: Some(PathBuf::from("/nonexistent/vouch/tsm")),
            ..Default::default()
        };
        if !Path::new(NSM_DEVICE).exists() {
            let e = select_producer(&cfg)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("no TEE hardware found"), "{e}");
        }
    }

    #[test]
    fn configfs_producer_reports_a_missing_interface() {
        let cfg = ProducerConfig {
            producer: ProducerKind::ConfigfsTsm,
            configfs_tsm_path: Some(PathBuf::from("/nonexistent/vouch/tsm")),
            ..Default::default()
        };
        let e = select_producer(&cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("no configfs-tsm report interface"), "{e}");
    }

    #[test]
    fn simulated_is_selected_by_name() {
        let cfg = ProducerConfig {
            producer: ProducerKind::Simulated,
            ..Default::default()
        };
        let p = select_producer(&cfg).unwrap().unwrap();
        assert_eq!(p.platform(), Platform::Simulated);
    }

    #[test]
    fn config_parses_from_toml_like_json() {
        let cfg: ProducerConfig = serde_json::from_value(
            serde_json::json!({"producer": "configfs-tsm", "snp_vcek_file": "/etc/vcek.der"}),
        )
        .unwrap();
        assert_eq!(cfg.producer, ProducerKind::ConfigfsTsm);
        assert!(
            serde_json::from_value::<ProducerConfig>(serde_json::json!({"producer": "sgx"}))
                .is_err()
        );
    }
}
