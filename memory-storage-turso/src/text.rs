//! Text from the database made safe to show on a terminal or in a log line.
//!
//! An `embedding_id`, a reason or any other value a table holds can carry
//! control characters (an ESC that starts a terminal escape sequence, a
//! newline that forges a log line) or Unicode bidi overrides (which reorder
//! what a reader sees). [`shown`] is the one place that escapes them; JSON
//! output does not need it (serde escapes control characters, and the JSON
//! keeps the exact value).

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` as it may be printed: control characters (C0 including `\n`, `\r`
/// and `\t`, DEL, C1 U+0080–U+009F), the Unicode line and paragraph
/// separators and the bidi controls (embeddings, overrides, isolates and
/// marks: U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) are written
/// as Rust escapes (`\n`, `\u{1b}`, `\u{202e}`); everything else is kept.
///
/// Borrows when there is nothing to escape. A backslash is kept as it is,
/// so escaping twice changes nothing more than escaping once.
///
/// ```
/// use memory_storage_turso::text::shown;
///
/// assert_eq!(shown("doc-1"), "doc-1");
/// assert_eq!(shown("\u{1b}[31mred"), "\\u{1b}[31mred");
/// ```
pub fn shown(s: &str) -> Cow<'_, str> {
    let Some(first) = s.find(needs_escape) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether `c` must not reach a terminal or a log line as it is.
fn needs_escape(c: char) -> bool {
    // `is_control` is Unicode's Cc: C0, DEL and C1.
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// Unix seconds as a UTC date and time, `2026-11-28 06:59:59 UTC`.
pub fn utc_date(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod date_tests {
    #[test]
    fn unix_seconds_read_as_utc_dates() {
        assert_eq!(super::utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::utc_date(1_795_849_199), "2026-11-28 06:59:59 UTC");
        assert_eq!(super::utc_date(-1), "1969-12-31 23:59:59 UTC");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["", "doc-42", "naïve 日本語 emoji 🦀", "a\\b", "quote \" '"] {
            assert!(matches!(shown(s), Cow::Borrowed(b) if b == s), "{s:?}");
        }
    }

    #[test]
    fn escape_sequences_and_line_breaks_are_escaped() {
        assert_eq!(shown("\u{1b}[31mred\u{1b}[0m"), "\\u{1b}[31mred\\u{1b}[0m");
        assert_eq!(shown("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(shown("nul\0bel\u{7}"), "nul\\u{0}bel\\u{7}");
        assert_eq!(shown("del\u{7f}"), "del\\u{7f}");
    }

    #[test]
    fn c1_controls_are_escaped_and_the_latin1_letters_after_them_kept() {
        assert_eq!(shown("\u{80}\u{9b}31m\u{9f}"), "\\u{80}\\u{9b}31m\\u{9f}");
        assert_eq!(shown("\u{a0}é"), "\u{a0}é");
    }

    #[test]
    fn bidi_controls_are_escaped() {
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            let s = format!("id{c}txt");
            assert_eq!(shown(&s), format!("id\\u{{{:x}}}txt", u32::from(c)));
        }
        assert_eq!(
            shown("\u{200e}\u{200f}\u{61c}"),
            "\\u{200e}\\u{200f}\\u{61c}"
        );
        assert_eq!(shown("\u{2028}\u{2029}"), "\\u{2028}\\u{2029}");
        // The characters around the ranges are ordinary text.
        assert_eq!(
            shown("\u{2027}\u{202F}\u{2065}\u{206A}"),
            "\u{2027}\u{202F}\u{2065}\u{206A}"
        );
    }

    #[test]
    fn the_result_has_no_character_left_to_escape_and_is_stable() {
        let nasty = "\u{1b}]0;title\u{7}\u{202e}evil\u{2066}\n\u{85}end";
        let once = shown(nasty).into_owned();
        assert!(!once.chars().any(needs_escape), "{once:?}");
        assert_eq!(shown(&once), once);
    }
}
