//! Token amounts: unsigned integers in the asset's smallest unit, written as decimal strings on
//! the wire and in config (JSON numbers lose precision above 2^53; token amounts reach 2^256).

use alloy_primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The longest decimal a `uint256` can need (2^256 − 1 has 78 digits).
const MAX_DIGITS: usize = 78;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmountError {
    #[error(
        "invalid amount {0:?}: expected a non-negative whole number of the asset's smallest unit"
    )]
    Invalid(String),
    #[error("amount overflows uint256")]
    Overflow,
}

/// Parses a strict decimal `uint256`: ASCII digits only, no sign, no spaces, no hex, no exponent.
pub fn parse_amount(s: &str) -> Result<U256, AmountError> {
    let shown = || AmountError::Invalid(s.chars().take(80).collect());
    if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(shown());
    }
    U256::from_str_radix(s, 10).map_err(|_| shown())
}

/// Formats `amount` as a decimal number of whole tokens, e.g. `1500` with 6 decimals → `0.0015`.
pub fn format_units(amount: U256, decimals: u8) -> String {
    let digits = amount.to_string();
    let d = decimals as usize;
    if d == 0 {
        return digits;
    }
    let padded = if digits.len() <= d {
        format!("{}{}", "0".repeat(d + 1 - digits.len()), digits)
    } else {
        digits
    };
    let (whole, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{frac}")
    }
}

/// A config/wire amount: serialised as a decimal string, read from a string or a JSON/TOML integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub U256);

impl Amount {
    pub const ZERO: Amount = Amount(U256::ZERO);

    pub fn from_u64(v: u64) -> Self {
        Amount(U256::from(v))
    }

    pub fn checked_add(self, other: Amount) -> Result<Amount, AmountError> {
        self.0
            .checked_add(other.0)
            .map(Amount)
            .ok_or(AmountError::Overflow)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_amount(s).map(Amount)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer amount, as a decimal string or an integer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount::from_u64(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Amount, E> {
                u64::try_from(v)
                    .map(Amount::from_u64)
                    .map_err(|_| E::custom("amount must not be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_strict() {
        assert_eq!(parse_amount("10000").unwrap(), U256::from(10000u64));
        assert_eq!(parse_amount("0").unwrap(), U256::ZERO);
        for bad in ["", " 1", "1 ", "+1", "-1", "0x10", "1e3", "1.5", "١"] {
            assert!(parse_amount(bad).is_err(), "{bad:?} should be rejected");
        }
        let max = U256::MAX.to_string();
        assert_eq!(parse_amount(&max).unwrap(), U256::MAX);
        // One more than 2^256 − 1: 78 digits but out of range.
        assert!(
            parse_amount(
                "115792089237316195423570985008687907853269984665640564039457584007913129639936"
            )
            .is_err()
        );
        assert!(parse_amount(&"1".repeat(79)).is_err());
    }

    #[test]
    fn format_units_places_the_point() {
        assert_eq!(format_units(U256::from(1500u64), 6), "0.0015");
        assert_eq!(format_units(U256::from(1_000_000u64), 6), "1");
        assert_eq!(format_units(U256::from(1_234_567u64), 6), "1.234567");
        assert_eq!(format_units(U256::ZERO, 6), "0");
        assert_eq!(format_units(U256::from(42u64), 0), "42");
    }

    #[test]
    fn amount_reads_strings_and_integers() {
        let a: Amount = serde_json::from_str("\"25\"").unwrap();
        let b: Amount = serde_json::from_str("25").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"25\"");
        assert!(serde_json::from_str::<Amount>("-1").is_err());
        assert!(serde_json::from_str::<Amount>("1.5").is_err());
    }
}
