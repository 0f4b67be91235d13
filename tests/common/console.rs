//! Console sessions for tests that post the console's forms over HTTP.
use super::Node;

/// A client that keeps no cookies and follows no redirects: each test
/// says which cookie it presents.
pub fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Sign in with `credential`: the session cookie's value, and its whole
/// `Set-Cookie` line.
pub async fn sign_in(node: &Node, credential: &str) -> (String, String) {
    let c = bare();
    let form = c.get(node.url("/console/signin")).send().await.unwrap();
    let nonce_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("quotad_signin="))
        .unwrap();
    let nonce = nonce_cookie
        .trim_start_matches("quotad_signin=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = c
        .post(node.url("/console/signin"))
        .header("cookie", format!("quotad_signin={nonce}"))
        .form(&[
            ("_csrf", nonce.as_str()),
            ("credential", credential),
            ("next", "/console"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in answers a redirect");
    let line = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("quotad_session="))
        .expect("a session cookie");
    let value = line
        .trim_start_matches("quotad_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    (value, line)
}
