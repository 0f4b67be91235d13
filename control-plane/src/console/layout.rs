//! The page shell: head (stylesheet, htmx), the header with the caller and
//! sign-out, the navigation, and `main`.
use super::brand::Brand;
use super::guard::Ctx;
use maud::{DOCTYPE, Markup, html};
use quotad_engine::model::Role;
use quotad_engine::quota::TenantState;

/// htmx's settings: no `eval`, no inline scripts, no injected indicator
/// `<style>` (the CSP forbids all three).
const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"selfRequestsOnly":true}"#;

/// The tenant a page is about, for the navigation.
pub struct TenantNav<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// The caller's role in it; `None` for an operator.
    pub role: Option<Role>,
    /// The tenant, for its branding.
    pub state: &'a TenantState,
}

/// Which navigation entry is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Tenants,
    Cluster,
    Overview,
    Usage,
    Members,
    Audit,
    Sharing,
    Flags,
    Webhooks,
    PlatformAlerts,
    Integrations,
    Settings,
}

fn head(title: &str, brand: Option<&Brand>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=(HTMX_CONFIG);
            title { (title) " · " (Brand::title_suffix(brand)) }
            link rel="stylesheet" href=(super::assets::CSS_PATH);
            @if let Some(b) = brand {
                link rel="stylesheet" href=(b.css_href);
                @if let Some(icon) = &b.favicon {
                    link rel="icon" href=(icon);
                }
            }
            script src=(super::assets::HTMX_PATH) defer {}
        }
    }
}

/// The mark at the top left: the tenant's logo and name, or the platform's.
fn mark(brand: Option<&Brand>) -> Markup {
    let name = brand.map_or(super::brand::PLATFORM, |b| b.name.as_str());
    html! {
        @if let Some(logo) = brand.and_then(|b| b.logo.as_deref()) {
            img.brand-logo src=(logo) alt="";
        }
        (name)
    }
}

/// A page without a session (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    bare_branded(title, body, None)
}

/// A page without a session, in a tenant's branding (its custom domain).
pub fn bare_branded(title: &str, body: Markup, brand: Option<&Brand>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, brand))
            body {
                header.top {
                    span.brand { (mark(brand)) }
                }
                main #main .narrow { (body) }
            }
        }
    }
}

fn link(href: &str, label: &str, current: bool) -> Markup {
    html! {
        @if current {
            a href=(href) aria-current="page" { (label) }
        } @else {
            a href=(href) { (label) }
        }
    }
}

/// A signed-in page.
pub fn page(
    ctx: &Ctx,
    title: &str,
    tenant: Option<&TenantNav>,
    section: Section,
    body: Markup,
) -> Markup {
    let brand = tenant
        .and_then(|t| Brand::of(&ctx.state.app, t.state))
        .or_else(|| ctx.host_brand.clone());
    let brand = brand.as_ref();
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, brand))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { (mark(brand)) }
                    nav aria-label="Platform" {
                        @if ctx.is_operator() {
                            (link("/console/tenants", "Tenants", section == Section::Tenants))
                            (link("/console/cluster", "Cluster", section == Section::Cluster))
                            (link("/console/platform/webhooks", "Alerts", section == Section::PlatformAlerts))
                        }
                    }
                    div.who {
                        span { "Signed in as " strong { (ctx.principal.user) } }
                        form method="post" action="/console/signout" {
                            input type="hidden" name="_csrf" value=(ctx.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                @if let Some(t) = tenant {
                    nav.tenant aria-label="Tenant" {
                        span.tenant-name { (t.name) }
                        (link(&format!("/console/tenants/{}", t.id), "Overview", section == Section::Overview))
                        (link(&format!("/console/tenants/{}/usage", t.id), "Usage", section == Section::Usage))
                        (link(&format!("/console/tenants/{}/members", t.id), "Members", section == Section::Members))
                        @if t.role.is_none_or(|r| r >= Role::Admin) {
                            (link(&format!("/console/tenants/{}/audit", t.id), "Audit", section == Section::Audit))
                        }
                        (link(&format!("/console/tenants/{}/sharing", t.id), "Sharing", section == Section::Sharing))
                        (link(&format!("/console/tenants/{}/flags", t.id), "Flags", section == Section::Flags))
                        (link(&format!("/console/tenants/{}/webhooks", t.id), "Webhooks", section == Section::Webhooks))
                        (link(&format!("/console/tenants/{}/integrations", t.id), "Integrations", section == Section::Integrations))
                        (link(&format!("/console/tenants/{}/settings", t.id), "Settings", section == Section::Settings))
                    }
                }
                main #main { (body) }
            }
        }
    }
}
