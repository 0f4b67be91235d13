//! A tenant's branding: its logo, favicon, colours, theme and product
//! name, and (ENTERPRISE) white label, which hides the platform's name and
//! marks wherever the tenant's users look.
use super::contrast::{self, Rgb};
use crate::quota::QuotaError;
use serde::{Deserialize, Serialize};

pub const DEFAULT_PRIMARY: Rgb = Rgb([0x1f, 0x4e, 0x8c]);
pub const DEFAULT_SECONDARY: Rgb = Rgb([0x0b, 0x6e, 0x69]);
pub const DEFAULT_TEXT: Rgb = Rgb([0xff, 0xff, 0xff]);
const MAX_URL: usize = 2048;
const MAX_PRODUCT_NAME: usize = 100;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Theme {
    Light,
    Dark,
    #[default]
    Auto,
}

impl Theme {
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
            Theme::Auto => "auto",
        }
    }
}

/// Stored in the tenant's replicated state (format 16).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    pub logo_url: Option<String>,
    pub favicon_url: Option<String>,
    pub primary_color: Rgb,
    pub secondary_color: Rgb,
    /// Text drawn on the primary colour (headers, buttons).
    pub text_color: Rgb,
    pub theme: Theme,
    /// Shown instead of "quotad" where the tenant's users look.
    pub product_name: Option<String>,
    pub white_label: bool,
}

impl Default for Branding {
    fn default() -> Self {
        Branding {
            logo_url: None,
            favicon_url: None,
            primary_color: DEFAULT_PRIMARY,
            secondary_color: DEFAULT_SECONDARY,
            text_color: DEFAULT_TEXT,
            theme: Theme::Auto,
            product_name: None,
            white_label: false,
        }
    }
}

/// What a caller sends: every field optional, a left-out field takes its
/// default (a PUT replaces the whole branding).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrandingInput {
    pub logo_url: Option<String>,
    pub favicon_url: Option<String>,
    pub primary_color: Option<String>,
    pub secondary_color: Option<String>,
    pub text_color: Option<String>,
    pub theme: Option<String>,
    pub product_name: Option<String>,
    pub white_label: Option<bool>,
}

impl BrandingInput {
    /// Validate into a [`Branding`]; each error names its field.
    pub fn check(&self) -> Result<Branding, QuotaError> {
        let color = |field: &'static str, raw: &Option<String>, default: Rgb| match raw {
            None => Ok(default),
            Some(raw) => Rgb::parse(raw).map_err(|e| QuotaError::invalid(field, e)),
        };
        let primary_color = color("primaryColor", &self.primary_color, DEFAULT_PRIMARY)?;
        let secondary_color = color("secondaryColor", &self.secondary_color, DEFAULT_SECONDARY)?;
        let text_color = color("textColor", &self.text_color, DEFAULT_TEXT)?;
        let r = contrast::ratio(text_color, primary_color);
        if r < contrast::AA_NORMAL_TEXT {
            return Err(QuotaError::invalid(
                "textColor",
                format!(
                    "the contrast of textColor {} on primaryColor {} is {:.2}:1; WCAG AA needs at least {}:1 for text",
                    text_color.hex(),
                    primary_color.hex(),
                    // Rounded down, so a failing ratio never prints as 4.50.
                    (r * 100.0).floor() / 100.0,
                    contrast::AA_NORMAL_TEXT
                ),
            ));
        }
        let theme = match self.theme.as_deref() {
            None | Some("auto") => Theme::Auto,
            Some("light") => Theme::Light,
            Some("dark") => Theme::Dark,
            Some(other) => {
                return Err(QuotaError::invalid(
                    "theme",
                    format!(
                        "unknown value {:?}: expected light, dark or auto",
                        crate::excerpt::short(other)
                    ),
                ));
            }
        };
        let product_name = match &self.product_name {
            None => None,
            Some(n) if n.trim().is_empty() => None,
            Some(n) if n.chars().count() > MAX_PRODUCT_NAME || n.chars().any(char::is_control) => {
                return Err(QuotaError::invalid(
                    "productName",
                    format!(
                        "must be at most {MAX_PRODUCT_NAME} characters, none of them control characters"
                    ),
                ));
            }
            Some(n) => Some(n.trim().to_string()),
        };
        Ok(Branding {
            logo_url: https_url("logoUrl", &self.logo_url)?,
            favicon_url: https_url("faviconUrl", &self.favicon_url)?,
            primary_color,
            secondary_color,
            text_color,
            theme,
            product_name,
            white_label: self.white_label.unwrap_or(false),
        })
    }
}

/// An absolute `https://` URL with a host and no credentials in it.
fn https_url(field: &'static str, raw: &Option<String>) -> Result<Option<String>, QuotaError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.len() > MAX_URL {
        return Err(QuotaError::invalid(
            field,
            format!("must be at most {MAX_URL} bytes"),
        ));
    }
    let url = url::Url::parse(raw).map_err(|e| {
        QuotaError::invalid(
            field,
            format!("{:?} is not a URL: {e}", crate::excerpt::short(raw)),
        )
    })?;
    if url.scheme() != "https" {
        return Err(QuotaError::invalid(
            field,
            format!("must be an https:// URL, not {}:", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(QuotaError::invalid(field, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(QuotaError::invalid(
            field,
            "must not carry a user name or password",
        ));
    }
    Ok(Some(url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> BrandingInput {
        BrandingInput {
            logo_url: Some("https://cdn.acme.test/logo.svg".into()),
            primary_color: Some("#FFFFFF".into()),
            text_color: Some("#111111".into()),
            theme: Some("dark".into()),
            product_name: Some("  Acme AI  ".into()),
            ..BrandingInput::default()
        }
    }

    fn field(i: BrandingInput) -> &'static str {
        i.check().unwrap_err().field().unwrap()
    }

    #[test]
    fn a_valid_branding_is_normalised_and_defaults_fill_the_rest() {
        let b = input().check().unwrap();
        assert_eq!(b.primary_color.hex(), "#ffffff");
        assert_eq!(b.theme, Theme::Dark);
        assert_eq!(b.product_name.as_deref(), Some("Acme AI"));
        assert_eq!(b.secondary_color, DEFAULT_SECONDARY);
        assert!(!b.white_label);
        assert_eq!(
            BrandingInput::default().check().unwrap(),
            Branding::default()
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(BrandingInput, &str)> = vec![
            (
                BrandingInput {
                    logo_url: Some("http://x.test/l.png".into()),
                    ..input()
                },
                "logoUrl",
            ),
            (
                BrandingInput {
                    favicon_url: Some("javascript:alert(1)".into()),
                    ..input()
                },
                "faviconUrl",
            ),
            (
                BrandingInput {
                    favicon_url: Some("https://u:p@x.test/f.ico".into()),
                    ..input()
                },
                "faviconUrl",
            ),
            (
                BrandingInput {
                    logo_url: Some("not a url".into()),
                    ..input()
                },
                "logoUrl",
            ),
            (
                BrandingInput {
                    primary_color: Some("blue".into()),
                    ..input()
                },
                "primaryColor",
            ),
            (
                BrandingInput {
                    secondary_color: Some("#12345".into()),
                    ..input()
                },
                "secondaryColor",
            ),
            (
                BrandingInput {
                    theme: Some("neon".into()),
                    ..input()
                },
                "theme",
            ),
            (
                BrandingInput {
                    product_name: Some("x".repeat(101)),
                    ..input()
                },
                "productName",
            ),
        ];
        for (i, want) in cases {
            assert_eq!(field(i), want);
        }
    }

    #[test]
    fn text_without_aa_contrast_on_the_primary_colour_is_refused_with_the_ratio() {
        let low = BrandingInput {
            primary_color: Some("#ffffff".into()),
            text_color: Some("#777777".into()),
            ..input()
        };
        let e = low.check().unwrap_err();
        assert_eq!(e.field(), Some("textColor"));
        assert!(e.to_string().contains("4.47:1"), "{e}");
        assert!(e.to_string().contains("WCAG AA"), "{e}");
        let just = BrandingInput {
            text_color: Some("#767676".into()),
            ..low
        };
        assert!(just.check().is_ok());
    }
}
