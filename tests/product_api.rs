//! Black-box: the product README's HTTP examples ("API Endpoints": tenant,
//! quota and member management) sent as written to a real node, in the
//! README's order, from the table in `tests/product_api/examples.json`,
//! sharing policies and request access included.
//!
//! The table is data: a newly documented example is a new entry there,
//! with what its answer must hold.
//! Code changes only for a new kind of placeholder source or a check that
//! needs another request (see [`follow_up`]).
mod common;

use common::{Node, token_for};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;

/// The table, next to this file.
const TABLE: &str = include_str!("product_api/examples.json");

/// The examples the product README documents today, in its order. Each one
/// must stay in the table: deleting one from the JSON fails the test.
const README_EXAMPLES: [&str; 10] = [
    "Create Tenant",
    "Get Tenant",
    "Update Tenant",
    "Upgrade Tier",
    "Get Quotas",
    "Update Quota",
    "Add Member",
    "Remove Member",
    "Create Sharing Policy",
    "Request Access",
];

/// The example whose body names the owner the whole table acts as.
const CREATE: &str = "Create Tenant";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Table {
    /// Where the examples come from.
    source: String,
    /// What is still to come.
    note: String,
    /// The README's placeholders, by the text that stands in for a value.
    substitutions: BTreeMap<String, Substitution>,
    examples: Vec<Example>,
}

/// What a README placeholder (`:id`, `tenant-uuid`) is replaced with: a
/// fixed value, or a string from an earlier example's answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Substitution {
    /// What the placeholder stands for, for the reader of the table.
    why: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    from: Option<FromAnswer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FromAnswer {
    /// The name of an example that runs earlier.
    example: String,
    /// A JSON pointer into its answer (the envelope).
    pointer: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Example {
    name: String,
    /// The README's heading above it.
    section: String,
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    /// `null` when the README's request has none.
    body: Value,
    /// Placeholders of this example only; they override the table's
    /// (a sharing policy's `:id` is not a tenant's).
    #[serde(default)]
    substitutions: BTreeMap<String, Substitution>,
    expect: Expect,
}

/// What the answer must hold. Pointers (RFC 6901) are relative to the
/// envelope `{"success": true, "data": …}`, which every answer must be.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Expect {
    status: u16,
    /// Exactly these values.
    #[serde(default)]
    fields: BTreeMap<String, Value>,
    /// Strings equal but for case: the README sends `"professional"`,
    /// quotad answers `"PROFESSIONAL"`.
    #[serde(default)]
    fields_ignore_case: BTreeMap<String, String>,
    /// Present and not null.
    #[serde(default)]
    present: Vec<String>,
    /// Equal to what a placeholder stands for (`/data/id` is `:id`).
    #[serde(default)]
    fields_equal_substitution: BTreeMap<String, String>,
    #[serde(default)]
    each_item_has_keys: Option<ItemKeys>,
    /// An item of the array matches every field given.
    #[serde(default)]
    item_with: Vec<ItemMatch>,
    /// No item of the array matches every field given.
    #[serde(default)]
    no_item_with: Vec<ItemMatch>,
    /// `/data` is a quota list whose remaining and percentage follow from
    /// limit and usage.
    #[serde(default)]
    check_quota_arithmetic: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ItemKeys {
    pointer: String,
    keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ItemMatch {
    pointer: String,
    #[serde(rename = "where")]
    fields: BTreeMap<String, Value>,
}

/// One answer, with what failure messages need: which example asked, and
/// the whole body.
struct Answer {
    label: String,
    status: u16,
    /// The body as received (pretty-printed when it is JSON).
    text: String,
    /// The body as JSON (`null` when it is not JSON).
    envelope: Value,
}

impl Answer {
    fn fail(&self, what: impl Display) -> ! {
        panic!(
            "{}: {what}\nHTTP {}, body:\n{}",
            self.label, self.status, self.text
        )
    }

    fn ensure(&self, ok: bool, what: impl Display) {
        if !ok {
            self.fail(what)
        }
    }

    fn at(&self, pointer: &str) -> &Value {
        self.envelope
            .pointer(pointer)
            .unwrap_or_else(|| self.fail(format!("the answer has no {pointer}")))
    }

    fn items(&self, pointer: &str) -> &Vec<Value> {
        self.at(pointer)
            .as_array()
            .unwrap_or_else(|| self.fail(format!("{pointer} is not an array")))
    }

    /// The envelope of a success with `status`.
    fn ensure_success(&self, status: u16) {
        self.ensure(
            self.status == status,
            format!("HTTP {}, expected {status}", self.status),
        );
        self.ensure(
            self.envelope["success"] == true,
            "the envelope's success is not true",
        );
        self.ensure(
            self.envelope.get("data").is_some(),
            "the envelope has no data",
        );
    }
}

/// What the run knows so far: the table, and every answer received, by
/// example name (placeholders are filled from them).
struct Run<'t> {
    table: &'t Table,
    answers: HashMap<String, Value>,
}

impl Run<'_> {
    /// What `text` stands for in `example`, if it is one of its
    /// placeholders. Only whole path segments and whole header values are
    /// placeholders, so `consumer-tenant-uuid` is not `tenant-uuid`.
    fn placeholder(&self, example: &Example, text: &str) -> Option<String> {
        let substitution = example
            .substitutions
            .get(text)
            .or_else(|| self.table.substitutions.get(text))?;
        if let Some(value) = &substitution.value {
            return Some(value.clone());
        }
        let from = substitution.from.as_ref()?;
        let answer = self.answers.get(&from.example).unwrap_or_else(|| {
            panic!(
                "{}: placeholder {text} comes from the answer of {:?}, which has not run \
                 before it (the table runs in order)",
                label(example),
                from.example
            )
        });
        let value = answer
            .pointer(&from.pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| {
                panic!(
                    "{}: placeholder {text} is {} of {:?}'s answer, which is no string: {answer:#}",
                    label(example),
                    from.pointer,
                    from.example
                )
            });
        Some(value.to_string())
    }

    /// The example's path with its placeholders filled in.
    fn path(&self, example: &Example) -> String {
        let path = example
            .path
            .split('/')
            .map(|segment| {
                self.placeholder(example, segment)
                    .unwrap_or_else(|| segment.to_string())
            })
            .collect::<Vec<_>>()
            .join("/");
        // A `:name` left over has no substitution: say so rather than send it.
        assert!(
            !path.split('/').any(|segment| segment.starts_with(':')),
            "{}: {path} keeps a placeholder that `substitutions` does not define",
            label(example)
        );
        path
    }

    /// The example's headers, values filled in (names are never placeholders).
    fn headers(&self, example: &Example) -> Vec<(String, String)> {
        example
            .headers
            .iter()
            .map(|(name, value)| {
                let value = self
                    .placeholder(example, value)
                    .unwrap_or_else(|| value.clone());
                (name.clone(), value)
            })
            .collect()
    }
}

fn label(example: &Example) -> String {
    format!("{} / {}", example.section, example.name)
}

/// The table holds what the README documents, and explains itself.
fn check_table(table: &Table) {
    assert!(
        !table.source.trim().is_empty() && !table.note.trim().is_empty(),
        "the table says where its examples come from (source) and what is still to come (note)"
    );
    let names: Vec<&str> = table.examples.iter().map(|e| e.name.as_str()).collect();
    let unique: HashSet<&str> = names.iter().copied().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "example names are unique (placeholders refer to them): {names:?}"
    );
    let documented: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| README_EXAMPLES.contains(name))
        .collect();
    assert_eq!(
        documented, README_EXAMPLES,
        "the table holds every example of the product README's API Endpoints, in its order"
    );
    let substitutions = table
        .substitutions
        .iter()
        .chain(table.examples.iter().flat_map(|e| e.substitutions.iter()));
    for (text, substitution) in substitutions {
        assert!(
            !substitution.why.trim().is_empty(),
            "placeholder {text} says what it stands for (why)"
        );
        assert!(
            substitution.value.is_some() != substitution.from.is_some(),
            "placeholder {text} has exactly one of value and from"
        );
        if let Some(from) = &substitution.from {
            assert!(
                names.contains(&from.example.as_str()),
                "placeholder {text} comes from {:?}, which is not in the table",
                from.example
            );
        }
    }
}

/// The answer to a request that has been sent.
async fn answer(label: String, sent: reqwest::Result<reqwest::Response>) -> Answer {
    let response = sent.unwrap_or_else(|e| panic!("{label}: the request failed: {e}"));
    let status = response.status().as_u16();
    let raw = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{label}: HTTP {status}, unreadable body: {e}"));
    let envelope: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let text = if envelope.is_null() {
        raw
    } else {
        serde_json::to_string_pretty(&envelope).unwrap_or(raw)
    };
    Answer {
        label,
        status,
        text,
        envelope,
    }
}

/// Send the example as the README writes it, placeholders filled in, plus
/// the bearer token quotad requires (the README's examples carry none).
async fn send(
    client: &reqwest::Client,
    node: &Node,
    token: &str,
    run: &Run<'_>,
    example: &Example,
) -> Answer {
    let path = run.path(example);
    let label = format!("{} ({} {path})", label(example), example.method);
    let method = reqwest::Method::from_bytes(example.method.as_bytes())
        .unwrap_or_else(|e| panic!("{label}: not an HTTP method: {e}"));
    let mut request = client.request(method, node.url(&path)).bearer_auth(token);
    for (name, value) in run.headers(example) {
        request = request.header(name, value);
    }
    // The README's own Content-Type header goes with it; `.json()` would add
    // one of reqwest's.
    if !example.body.is_null() {
        let body = serde_json::to_vec(&example.body).expect("a JSON value serializes");
        request = request.body(body);
    }
    answer(label, request.send().await).await
}

/// The item matches every field given.
fn matches(item: &Value, fields: &BTreeMap<String, Value>) -> bool {
    fields
        .iter()
        .all(|(key, value)| item.get(key) == Some(value))
}

/// What the example's `expect` says of its answer.
fn check(run: &Run<'_>, example: &Example, answer: &Answer) {
    let expect = &example.expect;
    answer.ensure_success(expect.status);
    for (pointer, expected) in &expect.fields {
        let actual = answer.at(pointer);
        answer.ensure(
            actual == expected,
            format!("{pointer} is {actual}, expected {expected}"),
        );
    }
    for (pointer, expected) in &expect.fields_ignore_case {
        let actual = answer.at(pointer);
        answer.ensure(
            actual
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(expected)),
            format!("{pointer} is {actual}, expected {expected:?} in any case"),
        );
    }
    for pointer in &expect.present {
        answer.ensure(!answer.at(pointer).is_null(), format!("{pointer} is null"));
    }
    for (pointer, text) in &expect.fields_equal_substitution {
        let expected = run.placeholder(example, text).unwrap_or_else(|| {
            answer.fail(format!(
                "fieldsEqualSubstitution names {text}, no placeholder"
            ))
        });
        let actual = answer.at(pointer);
        answer.ensure(
            actual.as_str() == Some(expected.as_str()),
            format!("{pointer} is {actual}, expected {expected:?} ({text})"),
        );
    }
    if let Some(each) = &expect.each_item_has_keys {
        check_each_item_has_keys(answer, each);
    }
    for wanted in &expect.item_with {
        answer.ensure(
            answer
                .items(&wanted.pointer)
                .iter()
                .any(|item| matches(item, &wanted.fields)),
            format!("no item of {} has {:?}", wanted.pointer, wanted.fields),
        );
    }
    for unwanted in &expect.no_item_with {
        answer.ensure(
            !answer
                .items(&unwanted.pointer)
                .iter()
                .any(|item| matches(item, &unwanted.fields)),
            format!("an item of {} has {:?}", unwanted.pointer, unwanted.fields),
        );
    }
    if expect.check_quota_arithmetic {
        check_quota_arithmetic(answer);
    }
}

/// Every item has every key (a `null` value counts: unlimited quotas have
/// no remaining); an empty array would prove nothing.
fn check_each_item_has_keys(answer: &Answer, each: &ItemKeys) {
    let items = answer.items(&each.pointer);
    answer.ensure(!items.is_empty(), format!("{} is empty", each.pointer));
    for item in items {
        for key in &each.keys {
            answer.ensure(
                item.get(key).is_some(),
                format!("an item of {} has no {key}: {item}", each.pointer),
            );
        }
    }
}

/// The README's quota answer shows `remaining = limit - usage` and
/// `percentage = usage / limit` in percent, two decimals: quotad's numbers
/// must agree with its own limit and usage. Unlimited quotas (`limit`
/// null) have neither to check.
fn check_quota_arithmetic(answer: &Answer) {
    let mut checked = 0;
    for quota in answer.items("/data") {
        let Some(limit) = quota["limit"].as_u64() else {
            continue;
        };
        let name = &quota["type"];
        let Some(usage) = quota["usage"].as_u64() else {
            answer.fail(format!("{name}: usage is not a number"))
        };
        let remaining = limit.saturating_sub(usage);
        answer.ensure(
            quota["remaining"].as_u64() == Some(remaining),
            format!(
                "{name}: remaining is {}, expected limit - usage = {remaining}",
                quota["remaining"]
            ),
        );
        let percentage = expected_percentage(usage, limit);
        answer.ensure(
            quota["percentage"]
                .as_f64()
                .is_some_and(|p| (p - percentage).abs() <= 0.01),
            format!(
                "{name}: percentage is {}, expected {percentage}",
                quota["percentage"]
            ),
        );
        checked += 1;
    }
    answer.ensure(
        checked > 0,
        "no quota has a numeric limit: the arithmetic check would prove nothing",
    );
}

/// `usage * 100 / limit` rounded to two decimals; a zero limit is 0 % when
/// unused and 100 % otherwise (quotad's reading: nothing left).
fn expected_percentage(usage: u64, limit: u64) -> f64 {
    if limit == 0 {
        return if usage == 0 { 0.0 } else { 100.0 };
    }
    (usage as f64 * 100.0 / limit as f64 * 100.0).round() / 100.0
}

/// `GET /api/v1/tenants/{id}/members`, checked to be a success.
async fn members(
    client: &reqwest::Client,
    node: &Node,
    token: &str,
    after: &str,
    tenant: &str,
) -> Answer {
    let path = format!("/api/v1/tenants/{tenant}/members");
    let label = format!("{after}, then GET {path}");
    let sent = client.get(node.url(&path)).bearer_auth(token).send().await;
    let answer = answer(label, sent).await;
    answer.ensure_success(200);
    answer
}

/// Checks that need another request after the example's, so the table
/// cannot express them: the owner the create names is a member with the
/// email it gives; the member removed is gone from the listing.
async fn follow_up(
    client: &reqwest::Client,
    node: &Node,
    token: &str,
    run: &Run<'_>,
    example: &Example,
) {
    let tenant = || {
        run.placeholder(example, ":id")
            .unwrap_or_else(|| panic!("{}: no :id placeholder", label(example)))
    };
    match example.name.as_str() {
        CREATE => {
            let owner = &example.body["ownerUserId"];
            let email = &example.body["ownerEmail"];
            let listed = members(client, node, token, &label(example), &tenant()).await;
            listed.ensure(
                listed
                    .items("/data")
                    .iter()
                    .any(|m| m["userId"] == *owner && m["role"] == "owner" && m["email"] == *email),
                format!("{owner} is not listed as owner with email {email}"),
            );
        }
        "Remove Member" => {
            let removed = run
                .placeholder(example, ":userId")
                .unwrap_or_else(|| panic!("{}: no :userId placeholder", label(example)));
            let listed = members(client, node, token, &label(example), &tenant()).await;
            listed.ensure(
                !listed
                    .items("/data")
                    .iter()
                    .any(|m| m["userId"] == removed.as_str()),
                format!("{removed} is still listed"),
            );
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn product_readme_examples_work_verbatim() {
    let table: Table = serde_json::from_str(TABLE)
        .unwrap_or_else(|e| panic!("tests/product_api/examples.json is no valid table: {e}"));
    check_table(&table);
    // The README's create names its owner; the whole table runs as that
    // user, who owns the tenant, so every example is theirs to make.
    let owner = table
        .examples
        .iter()
        .find(|e| e.name == CREATE)
        .and_then(|e| e.body["ownerUserId"].as_str())
        .expect("the create example names ownerUserId")
        .to_string();
    let token = token_for(&owner, None, &[], 3600);

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let client = common::client();
    let mut run = Run {
        table: &table,
        answers: HashMap::new(),
    };
    let mut ran = 0;
    for example in &table.examples {
        let answer = send(&client, &node, &token, &run, example).await;
        check(&run, example, &answer);
        run.answers.insert(example.name.clone(), answer.envelope);
        follow_up(&client, &node, &token, &run, example).await;
        ran += 1;
    }
    assert_eq!(
        ran,
        table.examples.len(),
        "every example of the table was sent and checked"
    );
}
