//! Turning form values into what the REST handlers take, and back.
use serde_json::Value;

/// Percent-encode everything but unreserved characters (query values).
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A number field as JSON: a whole number as a number, anything else as
/// the text typed, so the handler's own check names the field and says
/// what it expects (exactly as it would for a JSON client).
pub fn number(raw: &str) -> Value {
    let t = raw.trim();
    match t.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => match t.parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(t.to_string()),
        },
    }
}

/// A limit field: `unlimited` (any case) is JSON `null`.
pub fn limit(raw: &str) -> Value {
    if raw.trim().eq_ignore_ascii_case("unlimited") {
        Value::Null
    } else {
        number(raw)
    }
}

/// A comma-separated list of numbers (`80, 90, 95`).
pub fn numbers(raw: &str) -> Value {
    Value::Array(
        raw.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(number)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_become_the_json_a_client_would_send() {
        assert_eq!(number(" 42 "), Value::from(42));
        assert_eq!(number("-5"), Value::from(-5));
        assert_eq!(number("ten"), Value::from("ten"));
        assert_eq!(limit("Unlimited"), Value::Null);
        assert_eq!(numbers("80, 90,95"), serde_json::json!([80, 90, 95]));
        assert_eq!(encode("/console/t?a=b c"), "/console/t%3Fa%3Db%20c");
    }
}
