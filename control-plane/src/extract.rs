//! Extractors whose rejections answer in the envelope, naming what was wrong.
use crate::envelope::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use quotad_engine::excerpt::short;
use quotad_engine::model::TenantId;
use serde::de::DeserializeOwned;

/// A JSON request body, read but not yet parsed.
///
/// Handlers parse it only after they have authorized the caller for the
/// tenant the request is about, so a caller with no business in a tenant
/// learns nothing from validation messages (403 before 400).
pub struct JsonBody {
    /// `Content-Type` is JSON (`application/json` or `application/*+json`).
    json_content_type: bool,
    bytes: axum::body::Bytes,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::invalid(
                        "body",
                        format!(
                            "request body is larger than the limit of {} bytes",
                            crate::MAX_BODY_BYTES
                        ),
                    )
                    .with_status(axum::http::StatusCode::PAYLOAD_TOO_LARGE)
                } else {
                    ApiError::invalid("body", e.body_text())
                }
            })?;
        Ok(JsonBody {
            json_content_type,
            bytes,
        })
    }
}

impl JsonBody {
    /// A body made in process (the console posts forms through the same
    /// handlers as the REST API, as the JSON they would have sent).
    pub fn json(value: &serde_json::Value) -> JsonBody {
        JsonBody {
            json_content_type: true,
            bytes: serde_json::to_vec(value)
                .expect("a JSON value serializes")
                .into(),
        }
    }

    /// Parse the body; errors name the field and say what was expected in
    /// JSON's terms.
    /// Whether the request had no body at all.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !self.json_content_type {
            return Err(ApiError::invalid(
                "body",
                "request body must be JSON (Content-Type: application/json)",
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(&self.bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(body_error)?;
        de.end().map_err(|e| {
            ApiError::invalid(
                "body",
                format!(
                    "request body has data after the JSON value ({})",
                    location(&e)
                ),
            )
        })?;
        Ok(value)
    }
}

/// `JsonBody` parsed at once, for handlers that are not about one tenant.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> ApiJson<T> {
    /// Parse a body made in process (see [`JsonBody::json`]).
    pub fn of(value: &serde_json::Value) -> Result<ApiJson<T>, ApiError> {
        JsonBody::json(value).parse().map(ApiJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        JsonBody::from_request(req, state)
            .await?
            .parse()
            .map(ApiJson)
    }
}

fn location(e: &serde_json::Error) -> String {
    format!("line {}, column {}", e.line(), e.column())
}

fn body_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            let (field, message) = data_error(&path, &inner.to_string());
            ApiError::invalid(&field, message)
        }
        serde_json::error::Category::Eof => ApiError::invalid(
            "body",
            format!(
                "request body is not valid JSON: it ends early ({})",
                location(inner)
            ),
        ),
        _ => ApiError::invalid(
            "body",
            format!(
                "request body is not valid JSON: {}",
                strip_location(&inner.to_string())
            ),
        ),
    }
}

/// serde_json appends " at line L column C" to its messages.
fn strip_location(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// The first `` `quoted` `` word of a serde message.
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

fn join_path(parent: &str, child: &str) -> String {
    if parent.is_empty() || parent == "." {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// A serde data error as (field, message), in JSON's words rather than
/// Rust's (`a whole number`, not `u64`; an integer too large for the field
/// is called too large, not a float).
fn data_error(path: &str, raw: &str) -> (String, String) {
    let message = strip_location(raw);
    let field = if path.is_empty() || path == "." {
        "body".to_string()
    } else {
        path.to_string()
    };
    if let Some(rest) = message.strip_prefix("missing field ") {
        let name = backticked(rest).unwrap_or(rest);
        let field = join_path(path, name);
        return (field.clone(), format!("{field} is required"));
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let name = backticked(rest).unwrap_or(rest).to_string();
        // serde_path_to_error's path already ends with an unknown field.
        let field = if path == name || path.ends_with(&format!(".{name}")) {
            path.to_string()
        } else {
            join_path(path, &name)
        };
        let expected = rest
            .split_once("expected ")
            .map(|(_, e)| format!("; expected {}", e.replace('`', "")))
            .unwrap_or_default();
        return (field.clone(), format!("unknown field {field}{expected}"));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let value = backticked(rest).unwrap_or(rest);
        let expected = rest
            .split_once("expected ")
            .map(|(_, e)| format!("; expected {}", e.replace('`', "")))
            .unwrap_or_default();
        return (
            field.clone(),
            format!("{field}: unknown value {:?}{expected}", short(value)),
        );
    }
    if let Some(problem) = [
        "invalid digit found in string",
        "cannot parse integer from empty string",
        "number too large to fit in target type",
        "number too small to fit in target type",
    ]
    .iter()
    .find(|p| message == **p)
    {
        let text = if problem.contains("too large") {
            "is too large"
        } else if problem.contains("too small") {
            "is too small"
        } else {
            "must be a whole number"
        };
        return (field.clone(), format!("{field} {text}"));
    }
    let (found, expected) = match message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|m| m.split_once(", expected "))
    {
        Some(parts) => parts,
        None => return (field.clone(), format!("{field}: {message}")),
    };
    let what = expected_in_json(expected);
    let text = match (found, integer_range(expected)) {
        (f, Some((min, max))) if f.starts_with("floating point") => {
            match backticked(f).and_then(|n| n.parse::<f64>().ok()) {
                Some(n) if n.fract() == 0.0 && n > max as f64 => {
                    format!("{field} is too large: {what}")
                }
                Some(n) if n.fract() == 0.0 && n < min as f64 => {
                    format!("{field} is too small: {what}")
                }
                _ => format!("{field} must be {what}, not a fraction"),
            }
        }
        (f, Some(_)) if f.starts_with("integer") => {
            format!("{field} is out of range: {what}")
        }
        (f, _) => format!("{field} must be {what}, not {}", found_in_json(f)),
    };
    (field, text)
}

/// The range of a Rust integer type named in a serde message.
fn integer_range(expected: &str) -> Option<(i128, u128)> {
    Some(match expected {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX as u128),
        "i64" | "isize" => (i64::MIN.into(), i64::MAX as u128),
        _ => return None,
    })
}

fn expected_in_json(expected: &str) -> String {
    if let Some((min, max)) = integer_range(expected) {
        return format!("a whole number from {min} to {max}");
    }
    match expected {
        "a map" | "struct" => "an object".into(),
        "a sequence" => "an array".into(),
        "a boolean" | "a string" => expected.into(),
        "f64" | "f32" => "a number".into(),
        "a borrowed string" | "a string or null" => "a string".into(),
        other if other.starts_with("struct ") => "an object".into(),
        other if other.starts_with("a sequence") || other.starts_with("an array") => {
            "an array".into()
        }
        other => other.to_string(),
    }
}

fn found_in_json(found: &str) -> String {
    let kind = found.split(' ').next().unwrap_or(found);
    match kind {
        "string" => "a string".into(),
        "integer" | "floating" => "a number".into(),
        "boolean" => "true/false".into(),
        "map" => "an object".into(),
        "sequence" => "an array".into(),
        "null" | "unit" => "null".into(),
        other => other.to_string(),
    }
}

/// `Path<T>`, with rejections in the envelope.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| ApiError::invalid("path", e.body_text()))
    }
}

/// A tenant id from the path.
pub fn tenant_id(id: &str) -> Result<TenantId, ApiError> {
    TenantId::parse_str(id)
        .map_err(|_| ApiError::invalid("id", format!("tenant id {:?} is not a UUID", short(id))))
}

/// A request's query string, parsed only after the handler authorized the
/// caller (like [`JsonBody`]).
pub struct RawQuery(axum::http::Uri);

impl<S: Send + Sync> FromRequestParts<S> for RawQuery {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RawQuery(parts.uri.clone()))
    }
}

impl RawQuery {
    /// Parameters made in process (see [`JsonBody::json`]).
    pub fn of(pairs: &[(&str, String)]) -> RawQuery {
        let query: String = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_component(v)))
            .collect::<Vec<_>>()
            .join("&");
        RawQuery(
            format!("/?{query}")
                .parse()
                .unwrap_or_else(|_| axum::http::Uri::from_static("/")),
        )
    }

    /// Parse the parameters; errors name the parameter.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&self.0)
            .map(|axum::extract::Query(v)| v)
            .map_err(|e| query_error(&e.body_text()))
    }
}

/// Percent-encode everything but unreserved characters (a query value).
pub fn encode_component(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query_error(text: &str) -> ApiError {
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(text);
    match detail.split_once(": ") {
        Some((path, message)) if !path.contains(' ') => {
            let (field, message) = data_error(path, message);
            ApiError::invalid(&field, message)
        }
        _ => {
            let (field, message) = data_error(".", detail);
            let field = if field == "body" {
                "query".into()
            } else {
                field
            };
            ApiError::invalid(&field, message)
        }
    }
}

/// An RFC 3339 time from a query parameter, in Unix milliseconds.
pub fn time_param(field: &str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::invalid(
                field,
                format!(
                    "{:?} is not an RFC 3339 time (e.g. 2026-11-27T00:00:00Z)",
                    short(value)
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::data_error;

    #[test]
    fn serde_errors_read_in_json_terms_and_name_the_field() {
        let cases = [
            (
                ".",
                "missing field `name` at line 1 column 2",
                "name",
                "name is required",
            ),
            (
                "settings",
                "missing field `x`",
                "settings.x",
                "settings.x is required",
            ),
            (
                "ownerUser",
                "unknown field `ownerUser`, expected one of `name`, `slug`",
                "ownerUser",
                "unknown field ownerUser; expected one of name, slug",
            ),
            (
                "limit",
                "invalid type: floating point `1e20`, expected u64 at line 1 column 20",
                "limit",
                "limit is too large: a whole number from 0 to 18446744073709551615",
            ),
            (
                "limit",
                "invalid type: floating point `1.5`, expected u64",
                "limit",
                "limit must be a whole number from 0 to 18446744073709551615, not a fraction",
            ),
            (
                "trialDays",
                "invalid value: integer `-1`, expected u32",
                "trialDays",
                "trialDays is out of range: a whole number from 0 to 4294967295",
            ),
            (
                "limit",
                "invalid type: string \"10\", expected u64",
                "limit",
                "limit must be a whole number from 0 to 18446744073709551615, not a string",
            ),
            (
                "settings",
                "invalid type: string \"x\", expected a map",
                "settings",
                "settings must be an object, not a string",
            ),
            (
                "name",
                "invalid type: integer `3`, expected a string",
                "name",
                "name must be a string, not a number",
            ),
            (
                "limit",
                "invalid digit found in string",
                "limit",
                "limit must be a whole number",
            ),
            (
                "period",
                "unknown variant `weekly`, expected one of `hourly`, `daily`",
                "period",
                "period: unknown value \"weekly\"; expected one of hourly, daily",
            ),
        ];
        for (path, raw, field, message) in cases {
            let (f, m) = data_error(path, raw);
            assert_eq!((f.as_str(), m.as_str()), (field, message), "{raw}");
            assert!(!m.contains("u64") && !m.contains("floating"), "{m}");
        }
    }
}

/// The address the request came from, when the server records it (the
/// node does; an app built without connect info gives `None`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
