//! Request signing: HMAC-SHA256 (hex) over exactly the bytes sent, i.e. the percent-encoded
//! query string concatenated with the body, no separator. Also the query-string builder that
//! produces those bytes, and the `Secret` wrapper that keeps keys out of every log line.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// A credential (API key, API secret, proxy URL with a password). Its `Debug` and `Display`
/// print `***`; the value is only reachable through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The value itself: call only where it goes on the wire (header, HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A hex HMAC-SHA256 signature: 64 lowercase hex characters, on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into the array.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Signs Binance payloads with the account's secret key. The keyed HMAC state is computed
/// once; each signature clones it (no re-keying on the hot path).
#[derive(Clone)]
pub struct Signer {
    keyed: HmacSha256,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    pub fn new(secret: &Secret) -> Signer {
        Signer { keyed: keyed_hmac(secret.expose().as_bytes()) }
    }

    /// hex(HMAC-SHA256(secret, query ‖ body)): `query` and `body` exactly as sent (already
    /// percent-encoded), concatenated with no separator.
    pub fn sign(&self, query: &[u8], body: &[u8]) -> Signature {
        let mut mac = self.keyed.clone();
        mac.update(query);
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; 64];
        // 32 bytes in, 64 hex characters out: the lengths always match.
        let _ = hex::encode_to_slice(digest, &mut out);
        Signature(out)
    }

    /// Appends `&signature=<hex>` to a payload that is the whole signed text (query only or
    /// body only).
    pub fn append_signature(&self, payload: &mut String) {
        let signature = self.sign(payload.as_bytes(), b"");
        if !payload.is_empty() {
            payload.push('&');
        }
        payload.push_str("signature=");
        payload.push_str(signature.as_str());
    }
}

fn keyed_hmac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // Unreachable, so no test can run it: HMAC's `new_from_slice` accepts every key length.
        #[cfg(not(tarpaulin_include))]
        Err(_) => unreachable_hmac(),
    }
}

// Unreachable, so no test can run it: only called when HMAC refuses a key, which it never does.
#[cfg(not(tarpaulin_include))]
#[cold]
fn unreachable_hmac() -> HmacSha256 {
    // Not reachable (HMAC takes any key length); an empty key keeps this total without a panic.
    <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default())
}

/// Checks `signature` (hex, either case) against `query ‖ body` in constant time. For servers
/// that verify what a client sent.
pub fn verify(secret: &str, query: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(given) = hex::decode(signature) else {
        return false;
    };
    let mut mac = keyed_hmac(secret.as_bytes());
    mac.update(query);
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Splits a received payload into the signed part and the signature: removes the
/// `signature=` parameter and returns `(payload without it, signature)`. For servers.
pub fn split_signature(payload: &str) -> (String, Option<String>) {
    let mut rest = String::with_capacity(payload.len());
    let mut signature = None;
    for pair in payload.split('&') {
        if let Some(value) = pair.strip_prefix("signature=") {
            signature = Some(value.to_string());
            continue;
        }
        if !rest.is_empty() {
            rest.push('&');
        }
        rest.push_str(pair);
    }
    (rest, signature)
}

/// RFC 3986 percent-encoding: unreserved characters (`A-Z a-z 0-9 - _ . ~`) stay, every other
/// byte of the UTF-8 becomes `%XX` (upper-case hex).
pub fn percent_encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0x0f) as usize] as char);
        }
    }
}

/// Builds `key=value&key=value` into a borrowed buffer, percent-encoding keys and values.
pub struct QueryBuilder<'a> {
    out: &'a mut String,
}

impl<'a> QueryBuilder<'a> {
    /// Appends to `out` (a non-empty `out` gets a `&` before the next pair).
    pub fn new(out: &'a mut String) -> QueryBuilder<'a> {
        QueryBuilder { out }
    }

    fn key(&mut self, key: &str) {
        if !self.out.is_empty() {
            self.out.push('&');
        }
        percent_encode_into(self.out, key);
        self.out.push('=');
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        percent_encode_into(self.out, value);
        self
    }

    /// Any `Display` value (numbers, decimals), encoded as it is written: no temporary String.
    pub fn display(&mut self, key: &str, value: impl fmt::Display) -> &mut Self {
        use fmt::Write;
        self.key(key);
        let _ = write!(EncodingWriter(self.out), "{value}");
        self
    }
}

struct EncodingWriter<'a>(&'a mut String);

impl fmt::Write for EncodingWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        percent_encode_into(self.0, s);
        Ok(())
    }
}

/// Decodes a percent-encoded `application/x-www-form-urlencoded` payload into pairs (`+` is a
/// space). For servers and tests.
pub fn parse_query(payload: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(payload.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    fn signer() -> Signer {
        Signer::new(&Secret::from(SECRET))
    }

    fn example_params(q: &mut QueryBuilder<'_>, symbol: &str) {
        q.str("symbol", symbol)
            .str("side", "BUY")
            .str("type", "LIMIT")
            .str("timeInForce", "GTC")
            .display("quantity", 1)
            .str("price", "0.1")
            .display("recvWindow", 5000)
            .display("timestamp", 1499827319559i64);
    }

    #[test]
    fn reference_example_one_query_or_body_signs_byte_for_byte() {
        let mut payload = String::new();
        example_params(&mut QueryBuilder::new(&mut payload), "LTCBTC");
        assert_eq!(
            payload,
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        );
        assert_eq!(
            signer().sign(payload.as_bytes(), b"").as_str(),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
        // The same bytes as a body sign the same.
        assert_eq!(
            signer().sign(b"", payload.as_bytes()).as_str(),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn reference_example_two_mixed_query_and_body_have_no_separator() {
        let query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC";
        let body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            signer().sign(query.as_bytes(), body.as_bytes()).as_str(),
            "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
        );
        assert!(verify(
            SECRET,
            query.as_bytes(),
            body.as_bytes(),
            "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
        ));
    }

    #[test]
    fn reference_example_three_unicode_symbol_is_percent_encoded_before_signing() {
        let mut payload = String::new();
        example_params(&mut QueryBuilder::new(&mut payload), "１２３４５６");
        assert_eq!(
            payload,
            "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        );
        assert_eq!(
            signer().sign(payload.as_bytes(), b"").as_str(),
            "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
        );
    }

    #[test]
    fn append_signature_adds_the_signature_parameter_last() {
        let mut payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559".to_string();
        signer().append_signature(&mut payload);
        assert!(payload.ends_with(
            "&timestamp=1499827319559&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        ));
        let (signed, signature) = split_signature(&payload);
        assert!(verify(SECRET, signed.as_bytes(), b"", &signature.unwrap_or_default()));
    }

    #[test]
    fn verify_accepts_upper_case_hex_and_refuses_wrong_or_malformed_signatures() {
        let payload = b"symbol=LTCBTC";
        let good = signer().sign(payload, b"");
        assert!(verify(SECRET, payload, b"", good.as_str()));
        assert!(verify(SECRET, payload, b"", &good.as_str().to_ascii_uppercase()));
        assert!(!verify(SECRET, b"symbol=LTCBTD", b"", good.as_str()));
        assert!(!verify("other", payload, b"", good.as_str()));
        assert!(!verify(SECRET, payload, b"", "zz"));
        assert!(!verify(SECRET, payload, b"", ""));
    }

    #[test]
    fn query_encoding_escapes_reserved_characters_and_keeps_unreserved() {
        let mut out = String::new();
        QueryBuilder::new(&mut out)
            .str("a b", "x&y=z")
            .str("id", "g1-E_a.b~c")
            .str("json", "[\"BTCUSDT\"]")
            .display("neg", rust_decimal::Decimal::new(-15, 1));
        assert_eq!(out, "a%20b=x%26y%3Dz&id=g1-E_a.b~c&json=%5B%22BTCUSDT%22%5D&neg=-1.5");
        assert_eq!(
            parse_query(&out),
            vec![
                ("a b".to_string(), "x&y=z".to_string()),
                ("id".to_string(), "g1-E_a.b~c".to_string()),
                ("json".to_string(), "[\"BTCUSDT\"]".to_string()),
                ("neg".to_string(), "-1.5".to_string()),
            ]
        );
    }

    #[test]
    fn secrets_print_as_stars() {
        let secret = Secret::from(SECRET);
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert!(!format!("{:?}", Signer::new(&secret)).contains(SECRET));
    }

    #[test]
    fn a_secret_knows_whether_it_is_empty() {
        assert!(Secret::default().is_empty());
        assert!(Secret::new("").is_empty());
        assert!(!Secret::from(SECRET).is_empty());
    }

    #[test]
    fn a_signature_prints_as_its_lower_case_hex() {
        let signature = signer().sign(b"symbol=LTCBTC", b"");
        assert_eq!(signature.as_str().len(), 64);
        assert_eq!(format!("{signature:?}"), signature.as_str());
        assert_eq!(format!("{signature}"), signature.as_str());
        assert_eq!(signature.as_str(), signature.as_str().to_ascii_lowercase());
    }
}
