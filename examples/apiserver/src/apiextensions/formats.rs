//! String `format`s a CRD schema may use, as kube-openapi's `strfmt` registry checks them
//! (apiextensions-apiserver `pkg/apiserver/validation/formats.go` names the supported set;
//! other formats are dropped before validation).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;

use super::dns;

const SUPPORTED: [&str; 26] = [
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

fn normalize(format: &str) -> String {
    format.replace('-', "")
}

/// True when kube validates (rather than drops) this string format.
pub fn is_supported(format: &str) -> bool {
    SUPPORTED.contains(&normalize(format).as_str())
}

#[allow(clippy::expect_used)] // constant patterns, exercised by the tests
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constant regex")
}

static TIME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$"));
static UUID: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID4: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"));
static UUID5: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"));
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static HEXCOLOR: LazyLock<Regex> = LazyLock::new(|| re(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGBCOLOR: LazyLock<Regex> = LazyLock::new(|| {
    let n = r"\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*";
    re(&format!(r"^rgb\({n},{n},{n}\)$"))
});
static SSN: LazyLock<Regex> = LazyLock::new(|| re(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"));

/// `YYYY-MM-DD` with a real calendar day (Go's `time.Parse("2006-01-02")`).
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else { return false };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// strfmt's `IsDateTime`: an RFC 3339 date, `T`, and a time with zone.
pub fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    let Some(m) = TIME.captures(parts[1]) else { return false };
    let field = |i: usize| m.get(i).map_or("", |g| g.as_str());
    field(1) <= "23" && field(2) <= "59" && field(3) <= "59"
}

fn is_mac(s: &str) -> bool {
    let hex_groups = |sep: char, width: usize| {
        let groups: Vec<&str> = s.split(sep).collect();
        [6, 8, 20].contains(&(groups.len() * width / 2))
            && groups.iter().all(|g| g.len() == width && g.bytes().all(|c| c.is_ascii_hexdigit()))
    };
    hex_groups(':', 2) || hex_groups('-', 2) || hex_groups('.', 4)
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else { return false };
    let Ok(bits) = bits.parse::<u8>() else { return false };
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => bits <= 32,
        Ok(IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

/// True when `value` is valid for the (supported) `format`; formats whose check is not
/// implemented here (uri, email, isbn, creditcard, duration) accept any string.
pub fn validates(format: &str, value: &str) -> bool {
    match normalize(format).as_str() {
        "datetime" => is_date_time(value),
        "date" => is_date(value),
        "byte" => base64::engine::general_purpose::STANDARD.decode(value).is_ok(),
        "uuid" => UUID.is_match(value),
        "uuid3" => UUID3.is_match(value),
        "uuid4" => UUID4.is_match(value),
        "uuid5" => UUID5.is_match(value),
        "ipv4" => value.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => value.contains(':') && value.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(value),
        "mac" => is_mac(value),
        "hostname" => HOSTNAME.is_match(value),
        "hexcolor" => HEXCOLOR.is_match(value),
        "rgbcolor" => RGBCOLOR.is_match(value),
        "ssn" => SSN.is_match(value),
        "bsonobjectid" => value.len() == 24 && value.bytes().all(|c| c.is_ascii_hexdigit()),
        "k8sshortname" => dns::dns1123_label(value).is_empty(),
        "k8slongname" => dns::dns1123_subdomain(value).is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_check_like_strfmt() {
        assert!(is_date_time("2026-11-27T16:27:00Z"));
        assert!(is_date_time("2026-11-27T16:27:00.123+02:00"));
        assert!(!is_date_time("2026-11-27 16:27:00Z"));
        assert!(!is_date_time("2026-02-30T16:27:00Z"));
        assert!(!is_date_time("2026-11-27T24:00:00Z"));
        assert!(is_date("2024-02-29") && !is_date("2023-02-29"));
        assert!(validates("uuid", "0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!validates("ipv4", "1.2.3"));
        assert!(validates("cidr", "10.0.0.0/8") && !validates("cidr", "10.0.0.0/33"));
        assert!(validates("mac", "00:00:5e:00:53:01"));
        assert!(validates("hostname", "example.com") && !validates("hostname", "-x"));
        assert!(validates("byte", "aGVsbG8=") && !validates("byte", "!!"));
        assert!(is_supported("date-time") && !is_supported("int32"));
    }
}
