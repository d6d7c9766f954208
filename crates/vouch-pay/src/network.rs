//! Network identifiers. x402 v2 names EVM chains by CAIP-2 (`eip155:<chainId>`); v1 used legacy
//! names (`base-sepolia`). Both resolve to a chain id, which is what the EIP-712 domain and the
//! nonce store key on — so a nonce spent over v1 is spent over v2 as well.

/// Legacy v1 network names and their chain ids, as listed by the reference SDK
/// (coinbase/x402 `python/x402/mechanisms/evm/v1/constants.py`, `V1_NETWORK_CHAIN_IDS`).
const V1_NETWORKS: &[(&str, u64)] = &[
    ("base", 8453),
    ("base-sepolia", 84532),
    ("ethereum", 1),
    ("polygon", 137),
    ("polygon-amoy", 80002),
    ("avalanche", 43114),
    ("avalanche-fuji", 43113),
    ("abstract", 2741),
    ("abstract-testnet", 11124),
    ("iotex", 4689),
    ("sei", 1329),
    ("sei-testnet", 713715),
    ("peaq", 3338),
    ("story", 1513),
    ("educhain", 656476),
    ("skale-base-sepolia", 1444673419),
    ("megaeth", 4326),
    ("monad", 143),
    ("stable", 988),
    ("stable-testnet", 2201),
];

/// Chain id of a CAIP-2 `eip155:<n>` identifier or a known v1 name; `None` for anything else.
pub fn chain_id(network: &str) -> Option<u64> {
    if let Some(n) = network.strip_prefix("eip155:") {
        // Strict decimal: no sign, no leading zeros (CAIP-2 references are canonical strings).
        if n.is_empty()
            || n.len() > 20
            || !n.bytes().all(|b| b.is_ascii_digit())
            || (n.len() > 1 && n.starts_with('0'))
        {
            return None;
        }
        return n.parse().ok().filter(|&id| id > 0);
    }
    V1_NETWORKS
        .iter()
        .find(|(name, _)| *name == network)
        .map(|&(_, id)| id)
}

/// The CAIP-2 identifier of a chain.
pub fn caip2(chain_id: u64) -> String {
    format!("eip155:{chain_id}")
}

/// The v1 legacy name of a chain, if v1 clients know it.
pub fn v1_name(chain_id: u64) -> Option<&'static str> {
    V1_NETWORKS
        .iter()
        .find(|&&(_, id)| id == chain_id)
        .map(|&(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caip2_and_v1_names_resolve() {
        assert_eq!(chain_id("eip155:84532"), Some(84532));
        assert_eq!(chain_id("base-sepolia"), Some(84532));
        assert_eq!(chain_id("base"), Some(8453));
        assert_eq!(v1_name(84532), Some("base-sepolia"));
        assert_eq!(v1_name(31337), None);
        assert_eq!(caip2(8453), "eip155:8453");
    }

    #[test]
    fn malformed_networks_are_rejected() {
        for bad in [
            "eip155:",
            "eip155:-1",
            "eip155:0",
            "eip155:012",
            "eip155:1a",
            "solana:mainnet",
            "Base",
            "",
            "eip155:99999999999999999999999",
        ] {
            assert_eq!(chain_id(bad), None, "{bad:?}");
        }
    }
}
