//! Who is calling the console, and what every console answer carries:
//! the session behind a request ([`Ctx`]), the CSRF check of a posted form
//! ([`Ctx::posted`]), the security headers ([`headers`]) and the error
//! page ([`Refused`]).
use super::ConsoleState;
use super::session::{COOKIE, Session, SessionError, cookie};
use crate::auth::{Principal, RequestId};
use crate::envelope::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use quotad_engine::error_code::ErrorCode;
use quotad_engine::model::TenantId;
use std::collections::HashMap;

/// The Content-Security-Policy of every console answer: the console's own
/// scripts, styles and images only, no inline script or style, no frames,
/// forms posted only to the console.
///
/// Images may also come from any https:// origin: a tenant's logo and
/// favicon are https URLs it chose (branding refuses any other scheme). An
/// image runs nothing; what it can reveal is that the page was opened,
/// which the tenant's own logo host learns by design.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Middleware on every console route.
pub async fn headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show a tenant's data: never kept by a shared cache or the
        // browser's back button after sign-out.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A console request's caller.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub state: ConsoleState,
    pub session: Session,
    /// The caller as the REST handlers know callers: the console calls
    /// them, so the same rules apply.
    pub principal: Principal,
    /// This session's CSRF token, for the forms of the page.
    pub csrf: String,
    /// The path asked for (for the sign-in page to come back to).
    pub path: String,
    /// On a tenant's verified custom domain: its branding in force, for
    /// pages not about one tenant.
    pub host_brand: Option<super::brand::Brand>,
}

/// A console request refused: an HTML page with the status and what to
/// do, or a redirect to the sign-in page.
#[derive(Debug)]
pub enum Refused {
    /// To the sign-in page; `htmx` for a part of a page refreshing itself,
    /// which must send the whole page there, not swap the sign-in form in.
    SignIn {
        next: String,
        why: Option<String>,
        htmx: bool,
    },
    Page {
        status: StatusCode,
        message: String,
    },
}

impl Refused {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refused {
        Refused::Page {
            status,
            message: message.into(),
        }
    }
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Refused {
        let status = e.status.unwrap_or_else(|| {
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        });
        Refused::new(status, e.message)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignIn { next, why, htmx } => {
                let mut to = format!("/console/signin?next={}", super::forms::encode(&next));
                if let Some(why) = why {
                    to.push_str("&why=");
                    to.push_str(&super::forms::encode(&why));
                }
                if htmx {
                    let mut resp = StatusCode::UNAUTHORIZED.into_response();
                    if let Ok(v) = HeaderValue::from_str(&to) {
                        resp.headers_mut().insert("hx-redirect", v);
                    }
                    return resp;
                }
                Redirect::to(&to).into_response()
            }
            Refused::Page { status, message } => {
                let title = status.canonical_reason().unwrap_or("Error");
                let body = super::layout::bare(
                    title,
                    maud::html! {
                        h1 { (title) }
                        p role="alert" { (message) }
                        p { a href="/console" { "Back to the console" } }
                    },
                );
                (status, body).into_response()
            }
        }
    }
}

impl FromRequestParts<crate::AppState> for Ctx {
    type Rejection = Refused;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let state = &<ConsoleState as axum::extract::FromRef<crate::AppState>>::from_ref(app);
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/console".into());
        // A refreshing part of a page signs in for the page it is on.
        let htmx = parts.headers.contains_key("hx-request");
        let page = parts
            .headers
            .get("hx-current-url")
            .and_then(|v| v.to_str().ok())
            .and_then(|u| u.find("/console").map(|i| u[i..].to_string()));
        let next = match (htmx, page) {
            (true, Some(p)) => p,
            _ => path.clone(),
        };
        let sign_in = |why: Option<String>| Refused::SignIn {
            next: next.clone(),
            why,
            htmx,
        };
        let Some(raw) = cookie(&parts.headers, COOKIE) else {
            return Err(sign_in(None));
        };
        let session = match state.open(raw).await {
            Ok(s) => s,
            Err(e) => {
                crate::metrics::count_console_refusal(refusal_reason(&e));
                return Err(sign_in(Some(e.to_string())));
            }
        };
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let host_tenant = match host {
            Some(h) => state.app.engine.tenant_for_host(h).await,
            None => None,
        };
        let host_brand = match host_tenant {
            Some(t) => match state.app.engine.tenant(t).await {
                Ok(s) => super::brand::Brand::of(&state.app, &s),
                Err(_) => None,
            },
            None => None,
        };
        let key_tenant = session
            .key
            .as_ref()
            .and(session.tenant.as_deref())
            .and_then(|t| t.parse::<TenantId>().ok());
        // A session opened through SSO holds while the tenant's tier still
        // has SSO and its settings are there.
        let sso = match (&session.sso_role, &session.tenant) {
            (Some(role), Some(t)) => {
                let role = role.parse::<quotad_engine::model::Role>().ok();
                let tenant = t.parse::<TenantId>().ok();
                let state_ok = match tenant {
                    Some(id) => state.app.engine.tenant(id).await.ok().is_some_and(|t| {
                        t.custom.sso.is_some()
                            && state
                                .app
                                .engine
                                .catalog()
                                .requires(t.tenant.tier, quotad_engine::custom::features::SSO)
                                .is_ok()
                    }),
                    None => false,
                };
                match (tenant, role, state_ok) {
                    (Some(t), Some(r), true) => Some((t, r)),
                    _ => {
                        return Err(sign_in(Some(
                            "single sign-on is no longer available for this organisation; sign in again".into(),
                        )));
                    }
                }
            }
            _ => None,
        };
        let principal = Principal {
            user: session.sub.clone(),
            request_id,
            token_tenant: session.tenant.clone(),
            roles: session.roles.clone(),
            header_tenant: None,
            host_tenant,
            key_tenant,
            sso,
        };
        Ok(Ctx {
            csrf: state.key.csrf(&session.id),
            state: state.clone(),
            session,
            principal,
            path,
            host_brand,
        })
    }
}

fn refusal_reason(e: &SessionError) -> &'static str {
    match e {
        SessionError::Malformed => "malformed",
        SessionError::BadSignature => "bad_signature",
        SessionError::Expired => "expired",
        SessionError::SignedOut => "signed_out",
        SessionError::KeyGone => "key_gone",
    }
}

/// A posted form's fields, after its CSRF token was checked.
#[derive(Debug, Default)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The field, trimmed; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }
}

impl Ctx {
    pub fn is_operator(&self) -> bool {
        self.principal.is_operator()
    }

    /// Check a posted form's CSRF token (field `_csrf`): a form without
    /// this session's token was not made by this console for this session.
    pub fn posted(&self, form: Vec<(String, String)>) -> Result<Fields, Refused> {
        let fields: HashMap<String, String> = form.into_iter().collect();
        let ok = fields
            .get("_csrf")
            .is_some_and(|t| self.state.key.csrf_ok(&self.session.id, t));
        if !ok {
            crate::metrics::count_console_refusal("csrf");
            tracing::warn!(user = %self.principal.user, path = %self.path, "console form refused: missing or wrong CSRF token");
            return Err(Refused::new(
                StatusCode::FORBIDDEN,
                "This form's security token is missing or does not belong to your session. Reload the page and try again.",
            ));
        }
        Ok(Fields(fields))
    }

    /// An action the REST rules refused. A refusal for want of rights is
    /// recorded in the tenant's audit chain (`access.denied`): the console
    /// never offers such a form, so it was made by hand.
    pub async fn refused(&self, tenant: Option<TenantId>, action: &str, e: ApiError) -> Refused {
        if e.code == ErrorCode::PermissionDenied
            && let Some(tenant) = tenant
        {
            let detail = serde_json::json!({
                "source": "console",
                "action": action,
                "reason": e.message,
            })
            .to_string();
            if let Err(err) = self
                .state
                .app
                .engine
                .record_audit(
                    tenant,
                    &self.principal.audit(),
                    "access.denied",
                    "console",
                    detail,
                )
                .await
            {
                tracing::error!(error = %err, "could not audit a refused console action");
            }
        }
        e.into()
    }
}
