//! `GET /api/v1/marketplace`: the policies a tenant may ask for, of
//! providers that are active: every `marketplace` and `public` policy, and
//! `tenant` policies that name the acting tenant (private ones never).
//! Searched by text, resource type, provider and price; sorted; paged with
//! a cursor.
use crate::AppState;
use crate::auth::{Need, Principal, access};
use crate::envelope::{ApiError, ApiResult, ok};
use crate::extract::RawQuery;
use crate::sharing::acting_raw;
use crate::sharing_dto::PolicyDto;
use quotad_engine::model::{Role, TenantId};
use quotad_engine::sharing::{Amount, Policy, Pricing, Visibility};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MarketplaceParams {
    /// Words that must all appear in the resource id or type (any case).
    pub q: Option<String>,
    /// service, model, dataset or agent.
    pub resource_type: Option<String>,
    /// The provider tenant's id.
    pub provider: Option<Uuid>,
    /// Lowest price (per unit, or per month for subscriptions); free is 0.
    pub min_price: Option<String>,
    pub max_price: Option<String>,
    /// Only prices in this ISO 4217 currency (free policies always match).
    pub currency: Option<String>,
    /// newest (default), oldest, price_asc, price_desc or name.
    pub sort: Option<String>,
    /// `nextCursor` of the page before.
    pub cursor: Option<String>,
    /// 1..=100 [default: 20].
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MarketplacePage {
    pub items: Vec<PolicyDto>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Newest,
    Oldest,
    PriceAsc,
    PriceDesc,
    Name,
}

fn price(p: &Policy) -> Amount {
    match &p.spec.pricing {
        Pricing::Free => Amount::from_picos(0),
        Pricing::UsageBased { price, .. } | Pricing::Subscription { price, .. } => *price,
    }
}

fn amount(field: &str, raw: &Option<String>) -> Result<Option<Amount>, ApiError> {
    raw.as_deref()
        .map(|t| {
            Amount::parse(t).map_err(|e| ApiError::invalid(field, format!("{e} (e.g. 0.001)")))
        })
        .transpose()
}

/// Orders the page: by the sort key, then by id so the order is total
/// (and a cursor, an id, marks a place in it).
fn order(sort: Sort, a: &Policy, b: &Policy) -> std::cmp::Ordering {
    let key = match sort {
        Sort::Newest => b.created_at_ms.cmp(&a.created_at_ms),
        Sort::Oldest => a.created_at_ms.cmp(&b.created_at_ms),
        Sort::PriceAsc => price(a).cmp(&price(b)),
        Sort::PriceDesc => price(b).cmp(&price(a)),
        Sort::Name => a.spec.resource_id.cmp(&b.spec.resource_id),
    };
    key.then(a.id.cmp(&b.id))
}

#[utoipa::path(get, path = "/api/v1/marketplace", tag = "sharing", params(MarketplaceParams, ("X-Tenant-ID" = Option<uuid::Uuid>, Header, description = "The tenant looking (else the token's; operators may leave it out)")), responses((status = 200, description = "A page of listed policies", body = crate::envelope::Envelope<MarketplacePage>), crate::envelope::ApiErrors))]
pub async fn list(
    axum::extract::State(s): axum::extract::State<AppState>,
    p: Principal,
    query: RawQuery,
) -> ApiResult<MarketplacePage> {
    let viewer: Option<TenantId> = match acting_raw(&p) {
        Some(raw) => Some(access(&s, &p, raw, Need::Role(Role::Viewer)).await?.0),
        None if p.is_operator() => None,
        None => {
            return Err(ApiError::invalid(
                "X-Tenant-ID",
                "name the tenant that is looking (X-Tenant-ID), or use a token scoped to one tenant",
            ));
        }
    };
    let q: MarketplaceParams = query.parse()?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 100"));
    }
    let resource_type = q
        .resource_type
        .as_deref()
        .map(|t| s.engine.catalog().resource_type(t).map_err(ApiError::from))
        .transpose()?;
    let (min, max) = (
        amount("minPrice", &q.min_price)?,
        amount("maxPrice", &q.max_price)?,
    );
    let currency = q
        .currency
        .as_deref()
        .map(|c| {
            quotad_engine::sharing::Currency::parse(c)
                .map_err(|e| ApiError::invalid("currency", e.to_string()))
        })
        .transpose()?;
    let sort = match q.sort.as_deref() {
        None | Some("newest") => Sort::Newest,
        Some("oldest") => Sort::Oldest,
        Some("price_asc") => Sort::PriceAsc,
        Some("price_desc") => Sort::PriceDesc,
        Some("name") => Sort::Name,
        Some(other) => {
            return Err(ApiError::invalid(
                "sort",
                format!(
                    "unknown value {:?}: expected newest, oldest, price_asc, price_desc, name",
                    quotad_engine::excerpt::short(other)
                ),
            ));
        }
    };
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            Uuid::parse_str(c)
                .map_err(|_| ApiError::invalid("cursor", "not a cursor this API gave"))
        })
        .transpose()?;
    let words: Vec<String> =
        q.q.as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
    let now = s.engine.now_ms();
    let mut found: Vec<Policy> = s.engine.with_catalog(|c| {
        c.policies
            .values()
            .filter(|p| match p.spec.visibility {
                Visibility::Marketplace | Visibility::Public => true,
                Visibility::Tenant => {
                    viewer.is_some_and(|v| p.spec.conditions.allowed_tenants.contains(&v))
                }
                Visibility::Private => false,
            })
            .filter(|p| p.spec.conditions.expires_at_ms.is_none_or(|at| now < at))
            .filter(|p| {
                resource_type
                    .as_ref()
                    .is_none_or(|t| p.spec.resource_type == *t)
            })
            .filter(|p| q.provider.is_none_or(|id| p.provider == id))
            .filter(|p| min.is_none_or(|m| price(p) >= m))
            .filter(|p| max.is_none_or(|m| price(p) <= m))
            .filter(|p| {
                currency.is_none_or(|cur| match &p.spec.pricing {
                    Pricing::Free => true,
                    Pricing::UsageBased { currency, .. }
                    | Pricing::Subscription { currency, .. } => *currency == cur,
                })
            })
            .filter(|p| {
                let text = format!(
                    "{} {}",
                    p.spec.resource_id.to_lowercase(),
                    p.spec.resource_type.as_str()
                );
                words.iter().all(|w| text.contains(w.as_str()))
            })
            .cloned()
            .collect()
    });
    found.sort_by(|a, b| order(sort, a, b));
    let start = match cursor {
        None => 0,
        Some(id) => {
            found.iter().position(|p| p.id == id).ok_or_else(|| {
                ApiError::invalid(
                    "cursor",
                    "the listing it points into has changed; start again without a cursor",
                )
            })? + 1
        }
    };
    // Only active providers are listed; each provider is asked once.
    let mut active: HashMap<TenantId, bool> = HashMap::new();
    let mut page = Vec::new();
    let mut more = false;
    for p in &found[start..] {
        let ok = match active.get(&p.provider) {
            Some(a) => *a,
            None => {
                let a = match s.engine.tenant(p.provider).await {
                    Ok(t) => t.refusal(now).is_none(),
                    Err(e) if e.code() == quotad_engine::error_code::ErrorCode::NotFound => false,
                    Err(e) => return Err(e.into()),
                };
                active.insert(p.provider, a);
                a
            }
        };
        if !ok {
            continue;
        }
        if page.len() == limit {
            more = true;
            break;
        }
        page.push(p);
    }
    let next_cursor = if more {
        page.last().map(|p| p.id.to_string())
    } else {
        None
    };
    let items = s.engine.with_catalog(|c| {
        page.iter()
            .map(|p| PolicyDto::new(p, c.active_grants(p.id, now), Some(p.provider) == viewer))
            .collect()
    });
    Ok(ok(MarketplacePage { items, next_cursor }))
}
