//! The web console in headless Chromium: Debian's, driven by Playwright
//! for Python (`tests/python/console_browser.py`), which the test command
//! installs.
use super::{operator, service_token};
use std::path::PathBuf;
use std::process::Command;

pub fn python() -> String {
    std::env::var("QUOTAD_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub fn chromium() -> String {
    std::env::var("QUOTAD_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

pub fn axe() -> String {
    std::env::var("QUOTAD_TEST_AXE").unwrap_or_else(|_| {
        format!(
            "{}/tests/browser/node_modules/axe-core/axe.min.js",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

pub fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")
}

/// The browser tools must be there: the test command installs them.
pub fn require_browser() {
    let playwright = Command::new(python())
        .args(["-c", "import playwright.sync_api, grpc, grpc_tools"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        playwright,
        "{} cannot import playwright, grpc and grpc_tools: run the README's test command \
         (scripts/test.sh), which installs them, or set QUOTAD_TEST_PYTHON",
        python()
    );
    assert!(
        std::path::Path::new(&chromium()).exists(),
        "no Chromium at {}: scripts/test.sh installs Debian's chromium, or set QUOTAD_TEST_CHROMIUM",
        chromium()
    );
}

/// Run one scenario of the browser script; panics with its output if it
/// fails.
pub fn browse(scenario: &str, args: &[(&str, String)]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new(python());
    cmd.arg(format!("{root}/tests/python/console_browser.py"))
        .args(["--scenario", scenario])
        .args(["--proto-root", &format!("{root}/proto")])
        .args(["--chromium", &chromium()])
        .args(["--operator", &operator()])
        .args(["--service", &service_token()]);
    for (flag, value) in args {
        cmd.arg(format!("--{flag}")).arg(value);
    }
    let out = cmd.output().expect("run the browser script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "console {scenario} scenario failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("console {scenario}: all good")));
}
