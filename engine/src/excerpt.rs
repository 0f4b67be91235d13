//! How an error message quotes a value a caller chose: at most its first 32
//! characters, so an error never echoes a caller's megabyte back (into
//! responses, logs and audit events).

/// At most 32 characters of `s`, with `…` when cut.
pub fn short(s: &str) -> String {
    match s.char_indices().nth(32) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        assert_eq!(super::short("abc"), "abc");
        let long = "é".repeat(40);
        assert_eq!(super::short(&long), format!("{}…", "é".repeat(32)));
    }
}
