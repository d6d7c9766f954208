//! Request bodies as JSON, strictly: a key given twice in one object is refused with
//! `bad_request` / reason `duplicate_key` and a message naming the key, before the body is
//! parsed into its type.
//!
//! serde keeps the last of two equal keys in a map (`inputs`, a configuration object), so a
//! body read one way by a proxy, a log or a person could run another way here. The check is
//! one pass over the bytes, with no allocation for keys without escapes, so it costs little
//! next to the parse itself on a 16 MiB tensor body.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Deserialize;
use vouch_core::ErrorCode;

use crate::error::ApiError;

/// Nesting deeper than this is left to the parser, which refuses it (serde_json stops at 128).
const MAX_DEPTH: usize = 256;

/// A key repeated within one object.
#[derive(Debug, PartialEq)]
pub struct DuplicateKey {
    pub key: String,
    /// The key whose value holds that object (`None`: the top level or inside an array).
    pub parent: Option<String>,
}

impl DuplicateKey {
    pub fn into_error(self) -> ApiError {
        let key: String = self.key.chars().take(64).collect();
        let place = match &self.parent {
            Some(p) => format!(" in \"{}\"", p.chars().take(64).collect::<String>()),
            None => String::new(),
        };
        ApiError::new(
            ErrorCode::BadRequest,
            format!("duplicate JSON key \"{key}\"{place}: each key may appear once per object"),
        )
        .with_reason("duplicate_key")
    }
}

/// Parses a request body: duplicate keys refused first, then `what` names the body in the
/// message of any other error (`bad_request`).
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, ApiError> {
    check_unique_keys(body).map_err(DuplicateKey::into_error)?;
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{what}: {e}")))
}

enum Frame<'a> {
    Object {
        keys: HashSet<Cow<'a, [u8]>>,
        /// The next string is a key (after `{` or `,`), not a value.
        want_key: bool,
        parent: Option<Cow<'a, [u8]>>,
    },
    Array,
}

/// Finds the first key repeated within one object of `json`. Only meaningful for valid JSON:
/// on anything else it stops without a finding, and the parser reports the syntax error.
pub fn check_unique_keys(json: &[u8]) -> Result<(), DuplicateKey> {
    let mut stack: Vec<Frame<'_>> = Vec::new();
    // The last key read in the innermost object: the name of a container opened next.
    let mut last_key: Option<Cow<'_, [u8]>> = None;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b'"' => {
                let Some(end) = string_end(json, i + 1) else {
                    return Ok(());
                };
                let raw = &json[i + 1..end];
                i = end + 1;
                if let Some(Frame::Object { keys, want_key, .. }) = stack.last_mut()
                    && *want_key
                {
                    *want_key = false;
                    let key = unescape(raw);
                    if keys.contains(&key) {
                        let parent = match stack.last() {
                            Some(Frame::Object { parent, .. }) => parent.as_deref().map(text),
                            _ => None,
                        };
                        return Err(DuplicateKey {
                            key: text(&key),
                            parent,
                        });
                    }
                    keys.insert(key.clone());
                    last_key = Some(key);
                }
                continue;
            }
            b'{' | b'[' => {
                if stack.len() >= MAX_DEPTH {
                    return Ok(());
                }
                let in_array = matches!(stack.last(), Some(Frame::Array));
                stack.push(if b == b'{' {
                    Frame::Object {
                        keys: HashSet::new(),
                        want_key: true,
                        parent: if in_array { None } else { last_key.take() },
                    }
                } else {
                    Frame::Array
                });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(Frame::Object { want_key, .. }) = stack.last_mut() {
                    *want_key = true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The index of the quote closing a string whose contents start at `from`.
fn string_end(json: &[u8], mut from: usize) -> Option<usize> {
    loop {
        match *json.get(from)? {
            b'"' => return Some(from),
            b'\\' => from += 2,
            _ => from += 1,
        }
    }
}

/// A key's bytes as the parser will see them: escapes resolved (`"\u0078"` is `"x"`).
fn unescape(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\\') {
        return Cow::Borrowed(raw);
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    match serde_json::from_slice::<String>(&quoted) {
        Ok(s) => Cow::Owned(s.into_bytes()),
        Err(_) => Cow::Borrowed(raw),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dup(json: &str) -> Option<(String, Option<String>)> {
        check_unique_keys(json.as_bytes())
            .err()
            .map(|d| (d.key, d.parent))
    }

    #[test]
    fn repeated_keys_are_found_with_their_object() {
        assert_eq!(
            dup(r#"{"model":"a","tiers":[],"model":"b"}"#),
            Some(("model".into(), None))
        );
        assert_eq!(
            dup(r#"{"model":"m","inputs":{"x":{"dtype":"f32"},"y":1,"x":{}}}"#),
            Some(("x".into(), Some("inputs".into())))
        );
        assert_eq!(
            dup(r#"{"inputs":{"x":{"dtype":"float32","shape":[1],"data":[1],"shape":[1]}}}"#),
            Some(("shape".into(), Some("x".into())))
        );
        // An escape spelling the same key is the same key.
        assert_eq!(dup(r#"{"a":1,"\u0061":2}"#), Some(("a".into(), None)));
        assert_eq!(dup(r#"[{"k":1},{"k":2,"k":3}]"#), Some(("k".into(), None)));
    }

    #[test]
    fn unique_keys_pass_whatever_the_strings_contain() {
        for ok in [
            r#"{"a":1,"b":{"a":1,"b":2},"c":[{"a":1},{"a":2}]}"#,
            // Values equal to keys, quotes, braces and commas inside strings.
            r#"{"a":"a","b":"\"a\": 1, {\"b\"","c":"}],{","d\"":1,"d":2}"#,
            r#"{"x":"\\","y":"\\\""}"#,
            r#"{}"#,
            r#"[]"#,
            r#"{"a":{},"b":[],"c":{"a":[]}}"#,
        ] {
            assert_eq!(dup(ok), None, "{ok}");
        }
    }

    #[test]
    fn agrees_with_the_parser_on_generated_documents() {
        // A small deterministic generator: objects with keys from a tiny alphabet (so repeats
        // are common), nested objects and arrays, escaped keys.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        fn generate(next: &mut dyn FnMut() -> u64, depth: u32, out: &mut String) {
            match next() % if depth > 3 { 3 } else { 5 } {
                0 => out.push_str(&(next() % 100).to_string()),
                1 => out.push_str(r#""s,\"{}""#),
                2 => out.push_str("null"),
                3 => {
                    out.push('[');
                    for i in 0..next() % 3 {
                        if i > 0 {
                            out.push(',');
                        }
                        generate(next, depth + 1, out);
                    }
                    out.push(']');
                }
                _ => {
                    out.push('{');
                    for i in 0..next() % 4 {
                        if i > 0 {
                            out.push(',');
                        }
                        let k = ["a", "b", "\\u0061", "c\\\"", "c\\u0022"][(next() % 5) as usize];
                        out.push_str(&format!("\"{k}\":"));
                        generate(next, depth + 1, out);
                    }
                    out.push('}');
                }
            }
        }
        let mut found = 0;
        for _ in 0..2000 {
            let mut doc = String::new();
            generate(&mut next, 0, &mut doc);
            assert!(
                serde_json::from_str::<serde_json::Value>(&doc).is_ok(),
                "{doc}"
            );
            let scanner = check_unique_keys(doc.as_bytes()).is_err();
            let strict = serde_json::from_str::<Strict>(&doc).is_err();
            assert_eq!(scanner, strict, "{doc}");
            found += u32::from(scanner);
        }
        assert!(
            found > 100,
            "the generator made too few duplicates: {found}"
        );
    }

    /// Any JSON value, refusing a repeated key in any object (the reference for the scanner).
    struct Strict;

    impl<'de> serde::Deserialize<'de> for Strict {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Strict;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("JSON")
                }
                fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
                    Ok(Strict)
                }
                fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
                    Ok(Strict)
                }
                fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
                    Ok(Strict)
                }
                fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
                    Ok(Strict)
                }
                fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
                    Ok(Strict)
                }
                fn visit_unit<E>(self) -> Result<Strict, E> {
                    Ok(Strict)
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Strict, A::Error> {
                    while seq.next_element::<Strict>()?.is_some() {}
                    Ok(Strict)
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Strict, A::Error> {
                    let mut seen = HashSet::new();
                    while let Some(k) = map.next_key::<String>()? {
                        if !seen.insert(k) {
                            return Err(serde::de::Error::custom("duplicate"));
                        }
                        map.next_value::<Strict>()?;
                    }
                    Ok(Strict)
                }
            }
            d.deserialize_any(V)
        }
    }

    #[test]
    fn parse_reports_duplicates_with_a_stable_reason_and_other_errors_as_bad_request() {
        let e =
            parse::<serde_json::Value>(br#"{"a":1,"a":2}"#, "invalid request JSON").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(e.reason, Some("duplicate_key"));
        assert!(e.message.contains("\"a\""), "{}", e.message);
        let e = parse::<serde_json::Value>(b"{", "invalid request JSON").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(e.reason, None);
        assert!(
            e.message.starts_with("invalid request JSON: "),
            "{}",
            e.message
        );
        // Broken input never panics the scanner.
        for junk in [&b"\"abc"[..], b"{\"a\\", b"}}}]]", b"{\"a\":1,\"", b"\\"] {
            let _ = check_unique_keys(junk);
        }
        let deep = "[".repeat(100_000);
        assert_eq!(check_unique_keys(deep.as_bytes()), Ok(()));
    }
}
