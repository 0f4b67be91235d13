//! The console in a tenant's branding: its colours (a small stylesheet of
//! its own, `/console/brand/{tenant}.css`, since the CSP allows no inline
//! style), logo, favicon and product name; with white label, no platform
//! name anywhere. Only branding in force counts: a tenant whose tier lacks
//! custom branding sees the platform's look.
use super::ConsoleState;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use quotad_engine::custom::{Branding, Theme};
use quotad_engine::model::TenantId;
use quotad_engine::quota::TenantState;
use sha2::{Digest, Sha256};

/// The platform's name where a page shows one.
pub const PLATFORM: &str = "quotad console";

#[derive(Debug, Clone)]
pub struct Brand {
    /// The stylesheet, with its content's hash so a change is fetched.
    pub css_href: String,
    pub logo: Option<String>,
    pub favicon: Option<String>,
    /// What the header and titles call the console.
    pub name: String,
    pub white_label: bool,
}

impl Brand {
    /// The tenant's branding in force, if any.
    pub fn of(app: &AppState, t: &TenantState) -> Option<Brand> {
        let b = crate::branding::in_force(app, t)?;
        let name = match (&b.product_name, b.white_label) {
            (Some(n), _) => n.clone(),
            (None, true) => t.tenant.name.clone(),
            (None, false) => PLATFORM.to_string(),
        };
        Some(Brand {
            css_href: format!("/console/brand/{}.css?v={}", t.tenant.id, version(&b)),
            logo: b.logo_url.clone(),
            favicon: b.favicon_url.clone(),
            name,
            white_label: b.white_label,
        })
    }

    /// The brand of the tenant whose verified custom domain `host` is.
    pub async fn of_host(app: &AppState, host: Option<&str>) -> Option<Brand> {
        let tenant = app.engine.tenant_for_host(host?).await?;
        let state = app.engine.tenant(tenant).await.ok()?;
        Brand::of(app, &state)
    }

    /// The suffix of every page title: the platform's name unless white
    /// label hides it.
    pub fn title_suffix(brand: Option<&Brand>) -> String {
        match brand {
            Some(b) if b.white_label => b.name.clone(),
            Some(b) if b.name != PLATFORM => format!("{} · {PLATFORM}", b.name),
            _ => PLATFORM.to_string(),
        }
    }
}

fn version(b: &Branding) -> String {
    let digest = Sha256::digest(css(b).as_bytes());
    digest[..6].iter().map(|x| format!("{x:02x}")).collect()
}

/// The stylesheet of a branding: the header in the primary colour with
/// its text colour (their contrast was checked when it was set), the
/// secondary colour as the header's underline, and the theme.
pub fn css(b: &Branding) -> String {
    let dark = "--fg: #e6edf3; --muted: #b1bac4; --bg: #0d1117; --panel: #161b22; --line: #30363d; --accent: #6cb6ff; color-scheme: dark;";
    let theme = match b.theme {
        Theme::Light => String::new(),
        Theme::Dark => format!(":root {{ {dark} }}\n"),
        Theme::Auto => format!("@media (prefers-color-scheme: dark) {{ :root {{ {dark} }} }}\n"),
    };
    format!(
        "header.top {{ background: {p}; color: {t}; border-bottom: 4px solid {s}; }}\n\
         header.top a, header.top .brand, header.top .who, header.top button {{ color: {t}; }}\n\
         header.top button {{ border-color: {t}; background: transparent; }}\n\
         {theme}",
        p = b.primary_color.hex(),
        t = b.text_color.hex(),
        s = b.secondary_color.hex(),
    )
}

/// `GET /console/brand/{tenant}.css`: public like the pages it styles (a
/// tenant's custom domain shows it before sign-in); only colours.
pub async fn serve(State(state): State<ConsoleState>, Path(file): Path<String>) -> Response {
    let missing = || (StatusCode::NOT_FOUND, "no such stylesheet").into_response();
    let Some(id) = file
        .strip_suffix(".css")
        .and_then(|id| id.parse::<TenantId>().ok())
    else {
        return missing();
    };
    let Ok(t) = state.app.engine.tenant(id).await else {
        return missing();
    };
    let Some(b) = crate::branding::in_force(&state.app, &t) else {
        return missing();
    };
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        css(&b),
    )
        .into_response()
}
