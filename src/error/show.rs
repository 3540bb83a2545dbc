//! Bytes and sizes as text, the one way messages, errors and the CLI show them.

use std::fmt;

/// Bytes shown before a quoted value is cut.
pub const SHOW_BYTES_MAX: usize = 64;

/// Shows bytes for a human: printable UTF-8 as it is, anything else escaped (`\xNN`,
/// `\t`, `\n`, ...), so a line never breaks and nothing is silently replaced.
///
/// [`ShowBytes::quoted`] (what messages use) puts the text in double quotes, escapes
/// `"` and `\` inside it, and cuts it after [`SHOW_BYTES_MAX`] bytes, adding the
/// length: `"abc"... (100 bytes)`. [`ShowBytes::plain`] shows all of it, unquoted (for
/// tab-separated listings).
#[derive(Debug, Clone, Copy)]
pub struct ShowBytes<'a> {
    bytes: &'a [u8],
    quoted: bool,
}

impl<'a> ShowBytes<'a> {
    /// Quoted and cut after [`SHOW_BYTES_MAX`] bytes: `"key"`, `"\xff\x00"`.
    pub fn quoted(bytes: &'a [u8]) -> Self {
        ShowBytes {
            bytes,
            quoted: true,
        }
    }

    /// All of the bytes, unquoted: `key`, `\xff\x00`.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub fn plain(bytes: &'a [u8]) -> Self {
        ShowBytes {
            bytes,
            quoted: false,
        }
    }
}

impl fmt::Display for ShowBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = self.bytes;
        let shown = if self.quoted {
            &all[..all.len().min(SHOW_BYTES_MAX)]
        } else {
            all
        };
        if self.quoted {
            f.write_str("\"")?;
        }
        match std::str::from_utf8(shown) {
            Ok(text) if !text.chars().any(char::is_control) => {
                if self.quoted {
                    for c in text.chars() {
                        if matches!(c, '"' | '\\') {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                } else {
                    f.write_str(text)?;
                }
            }
            // Binary data, a control character, or a cut inside a multi-byte character.
            _ => write!(f, "{}", shown.escape_ascii())?,
        }
        if self.quoted {
            f.write_str("\"")?;
            if shown.len() < all.len() {
                write!(f, "... ({} bytes)", all.len())?;
            }
        }
        Ok(())
    }
}

/// Shows an optional value: quoted bytes, or "absent".
#[derive(Debug, Clone, Copy)]
pub struct ShowValue<'a>(pub Option<&'a [u8]>);

impl fmt::Display for ShowValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(bytes) => ShowBytes::quoted(bytes).fmt(f),
            None => f.write_str("absent"),
        }
    }
}

/// A size for a human, in binary units: 10 -> "10 B", 1536 -> "1.5 KiB".
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The indefinite article for `n` read aloud in English: "an" for 8, 11, 18, 80..=89,
/// 800..=899, 8000.., 11000.., 18000.. (eight, eleven, eighteen, eighty, eight hundred,
/// eleven thousand, ...), "a" otherwise.
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn article(n: u64) -> &'static str {
    let digits = n.to_string();
    // The number is read from its leading group of up to three digits ("11" of 11,500).
    let lead = match digits.len() % 3 {
        0 => &digits[..3],
        k => &digits[..k],
    };
    if digits.starts_with('8') || lead == "11" || lead == "18" {
        "an"
    } else {
        "a"
    }
}

/// "a 5-byte" / "an 11-byte": the article and the size, to go before a noun.
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn sized(n: u64) -> String {
    format!("{} {n}-byte", article(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escapes_binary_and_cuts_long_values() {
        assert_eq!(ShowBytes::quoted(b"abc").to_string(), "\"abc\"");
        assert_eq!(ShowBytes::quoted(b"a\"b\\").to_string(), "\"a\\\"b\\\\\"");
        assert_eq!(ShowBytes::quoted(b"\xff\x00").to_string(), "\"\\xff\\x00\"");
        assert_eq!(
            ShowBytes::quoted("héllo".as_bytes()).to_string(),
            "\"héllo\""
        );
        let long = ShowBytes::quoted(&[b'x'; 100]).to_string();
        assert!(long.ends_with("\"... (100 bytes)"), "{long}");
        assert_eq!(ShowValue(None).to_string(), "absent");
    }

    #[test]
    fn plain_shows_everything_unquoted() {
        assert_eq!(ShowBytes::plain(b"abc").to_string(), "abc");
        assert_eq!(ShowBytes::plain(b"a\tb").to_string(), "a\\tb");
        assert_eq!(ShowBytes::plain(b"\xff").to_string(), "\\xff");
        assert_eq!(ShowBytes::plain(&[b'x'; 100]).to_string().len(), 100);
    }

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn articles_follow_how_the_number_is_read() {
        for n in [
            8, 11, 18, 80, 83, 89, 800, 850, 8000, 11_000, 11_500, 18_000, 80_000, 11_000_000,
        ] {
            assert_eq!(article(n), "an", "{n}");
        }
        for n in [
            0, 1, 5, 10, 12, 17, 19, 28, 100, 110, 118, 180, 1100, 1800, 111_000, 180_000,
        ] {
            assert_eq!(article(n), "a", "{n}");
        }
        assert_eq!(sized(11), "an 11-byte");
        assert_eq!(sized(5), "a 5-byte");
    }
}
