//! JumpServer access-key HTTP Signatures (draft-cavage, hmac-sha256), both directions:
//! the client signs with it and the simulator verifies with it, so the two cannot drift apart.
//! Also the server's rebuild of `(request-target)` (Django `get_full_path`), which decides
//! whether a signature made over the bytes a client sent still matches (§2.1).
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The headers this client always signs: the server requires the first two; the other two bind
/// the response format and the org to the signature.
pub const CLIENT_SIGNED_HEADERS: [&str; 4] = ["(request-target)", "date", "accept", "x-jms-org"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpSigError {
    #[error("signed header {0:?} is not present in the request")]
    MissingHeader(String),
    #[error("header {0:?} cannot be signed (the server never sees it under that name)")]
    UnsignableHeader(String),
    #[error("required header {0:?} is not in the signed header list")]
    RequiredHeaderNotSigned(String),
    #[error("signing string is not ASCII")]
    NonAscii,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("signature does not match")]
    BadSignature,
}

/// Parsed `Authorization: Signature …` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    pub key_id: String,
    pub algorithm: String,
    /// Lower-cased header names in signing order; `["date"]` when the parameter is absent
    /// (what the server's library assumes).
    pub headers: Vec<String>,
    pub signature: String,
}

/// The string that gets HMACed: one `name: value` line per signed header, joined by `\n`.
pub fn signing_string(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    signed_headers: &[&str],
) -> Result<String, HttpSigError> {
    let mut lines = Vec::with_capacity(signed_headers.len());
    for name in signed_headers {
        let lname = name.to_ascii_lowercase();
        if lname == "(request-target)" {
            lines.push(format!(
                "(request-target): {} {}",
                method.to_ascii_lowercase(),
                path_and_query
            ));
            continue;
        }
        let value = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&lname))
            .map(|(_, v)| *v)
            .ok_or_else(|| HttpSigError::MissingHeader(lname.clone()))?;
        lines.push(format!("{lname}: {value}"));
    }
    let s = lines.join("\n");
    if !s.is_ascii() {
        return Err(HttpSigError::NonAscii);
    }
    Ok(s)
}

fn mac(secret: &str, signing_string: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
    m.update(signing_string.as_bytes());
    m
}

/// base64(HMAC-SHA256(secret text, signing string)).
pub fn sign(secret: &str, signing_string: &str) -> String {
    B64.encode(mac(secret, signing_string).finalize().into_bytes())
}

/// Constant-time check of a base64 signature against the expected one.
pub fn verify(secret: &str, signing_string: &str, signature_b64: &str) -> bool {
    let expected = sign(secret, signing_string);
    expected.as_bytes().ct_eq(signature_b64.as_bytes()).into()
}

/// `Signature keyId="…",algorithm="hmac-sha256",signature="…",headers="…"` — the parameter
/// order the server-side library emits (the vectors' order).
pub fn authorization_header(key_id: &str, signed_headers: &[&str], signature: &str) -> String {
    let names: Vec<String> = signed_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    format!(
        "Signature keyId=\"{key_id}\",algorithm=\"hmac-sha256\",signature=\"{signature}\",headers=\"{}\"",
        names.join(" ")
    )
}

/// Parses an `Authorization` value; scheme and parameter names are case-insensitive, as on the server.
pub fn parse_authorization(value: &str) -> Result<ParsedSignature, HttpSigError> {
    let value = value.trim();
    let (scheme, rest) = value
        .split_once(' ')
        .ok_or(HttpSigError::Malformed("no parameters"))?;
    if !scheme.eq_ignore_ascii_case("signature") {
        return Err(HttpSigError::Malformed("scheme is not Signature"));
    }
    let mut key_id = None;
    let mut algorithm = None;
    let mut headers = None;
    let mut signature = None;
    let mut s = rest.trim();
    while !s.is_empty() {
        let (name, after) = s
            .split_once('=')
            .ok_or(HttpSigError::Malformed("parameter without '='"))?;
        let name = name.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (val, remaining) = if let Some(q) = after.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or(HttpSigError::Malformed("unterminated quote"))?;
            (&q[..end], &q[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        let remaining = remaining.trim_start();
        s = match remaining.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if remaining.is_empty() => "",
            None => return Err(HttpSigError::Malformed("junk after parameter")),
        };
        let slot = match name.as_str() {
            "keyid" => &mut key_id,
            "algorithm" => &mut algorithm,
            "headers" => &mut headers,
            "signature" => &mut signature,
            _ => continue,
        };
        *slot = Some(val.to_owned());
    }
    let key_id = key_id.ok_or(HttpSigError::Malformed("keyId missing"))?;
    let algorithm = algorithm.ok_or(HttpSigError::Malformed("algorithm missing"))?;
    let signature = signature.ok_or(HttpSigError::Malformed("signature missing"))?;
    let headers = headers
        .map(|h| {
            h.split_ascii_whitespace()
                .map(|x| x.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_else(|| vec!["date".to_owned()]);
    Ok(ParsedSignature {
        key_id,
        algorithm,
        headers,
        signature,
    })
}

/// Checks a header list the way the server does before verifying: `(request-target)` and `date`
/// are required; `content-type`/`content-length` can never match (the server mangles their names).
/// The real server answers these with HTTP 500, not 401.
pub fn check_signed_header_list(signed: &[String]) -> Result<(), HttpSigError> {
    for required in ["(request-target)", "date"] {
        if !signed.iter().any(|h| h == required) {
            return Err(HttpSigError::RequiredHeaderNotSigned(required.to_owned()));
        }
    }
    if let Some(h) = signed
        .iter()
        .find(|h| *h == "content-type" || *h == "content-length")
    {
        return Err(HttpSigError::UnsignableHeader(h.clone()));
    }
    Ok(())
}

/// Everything a server needs to verify one request: the parsed header, the signing string it
/// rebuilt, and whether the signature matches `secret`.
pub fn verify_request(
    secret: &str,
    method: &str,
    server_full_path: &str,
    headers: &[(&str, &str)],
    parsed: &ParsedSignature,
) -> Result<(), HttpSigError> {
    if !parsed.algorithm.eq_ignore_ascii_case("hmac-sha256") {
        return Err(HttpSigError::UnsupportedAlgorithm(parsed.algorithm.clone()));
    }
    check_signed_header_list(&parsed.headers)?;
    let names: Vec<&str> = parsed.headers.iter().map(String::as_str).collect();
    let ss = signing_string(method, server_full_path, headers, &names)?;
    if verify(secret, &ss, &parsed.signature) {
        Ok(())
    } else {
        Err(HttpSigError::BadSignature)
    }
}

/// What Django's `request.get_full_path()` yields for a raw request target: the path is
/// percent-decoded then re-escaped (unreserved and `/:@&+$,!~*'()` kept), the query goes through
/// `iri_to_uri` (existing `%XX` kept, a fixed safe set kept, everything else escaped).
pub fn django_full_path(raw_target: &str) -> String {
    let (path, query) = match raw_target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw_target, None),
    };
    let decoded = percent_encoding::percent_decode_str(path).collect::<Vec<u8>>();
    let mut out = String::with_capacity(raw_target.len());
    for b in decoded {
        if b.is_ascii_alphanumeric() || b"/:@&+$,-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if let Some(q) = query {
        if !q.is_empty() {
            out.push('?');
            for b in q.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~/#%[]=:;$&()+,!?*@'".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_from_reference() {
        let ss = signing_string(
            "GET",
            "/api/v1/users/users/?username=alice&limit=10&offset=0",
            &[
                ("Accept", "application/json"),
                ("Date", "Sun, 22 Nov 2026 08:00:00 GMT"),
            ],
            &["(request-target)", "date"],
        )
        .unwrap();
        let sig = sign("q8ZfW2nLr5Tx0Hb7Kc3Vy9Jm4Pd6Sg1AeUoR", &ss);
        assert_eq!(sig, "LDL4rff2PRVO6je7iWkuxKOGoUGxdkrHz7xTW9U4fX4=");
        let h = authorization_header(
            "5d0b6f9e-1c2a-4e3b-9f47-8a6c2d1e0b93",
            &["(request-target)", "date"],
            &sig,
        );
        let p = parse_authorization(&h).unwrap();
        assert_eq!(p.key_id, "5d0b6f9e-1c2a-4e3b-9f47-8a6c2d1e0b93");
        assert_eq!(p.headers, vec!["(request-target)", "date"]);
        assert_eq!(p.signature, sig);
    }

    #[test]
    fn missing_header_is_an_error() {
        let e = signing_string("GET", "/x/", &[], &["(request-target)", "date"]).unwrap_err();
        assert_eq!(e, HttpSigError::MissingHeader("date".into()));
    }

    #[test]
    fn parse_is_case_insensitive_and_rejects_garbage() {
        let p = parse_authorization(
            "signature KEYID=\"a\", Algorithm=\"hmac-sha256\", signature=\"c2ln\"",
        )
        .unwrap();
        assert_eq!(p.headers, vec!["date"]);
        assert!(parse_authorization("Bearer abc").is_err());
        assert!(parse_authorization("Signature keyId=\"a").is_err());
        assert!(parse_authorization("Signature").is_err());
        assert!(parse_authorization("Signature keyId=\"a\",algorithm=\"x\"").is_err());
    }

    #[test]
    fn django_path_rules() {
        assert_eq!(
            django_full_path("/api/v1/assets/platforms/Windows%2DRDP/"),
            "/api/v1/assets/platforms/Windows-RDP/"
        );
        assert_eq!(
            django_full_path("/a/?search=10.0.0.1|10.0.0.2&limit=10"),
            "/a/?search=10.0.0.1%7C10.0.0.2&limit=10"
        );
        assert_eq!(django_full_path("/a/?v=%e7%b3&x=a+b"), "/a/?v=%e7%b3&x=a+b");
    }
}
