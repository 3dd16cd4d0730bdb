//! The support console in a real browser: a command and a refusal go through a real stack,
//! then `tests/console/console.test.mjs` drives Debian's headless Chromium through the page
//! (search by keyboard, timeline, officer and back, live failures) and keeps screenshots in
//! `target/test-artifacts/console/`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use contracts::headers::http;
use e2e_tests::{StackOptions, TestStack, stack::officer, timeline::timeline_until};
use reqwest::StatusCode;
use serde_json::json;

const BADGE: &str = "B-8101";
const EMAIL: &str = "ana.reyes@example.org";
const PHONE: &str = "+1 555 0100 77";

#[tokio::test]
async fn support_staff_find_a_command_read_its_timeline_and_see_refusals() {
    let browser = BrowserTest::locate();
    let stack = TestStack::start(StackOptions::default())
        .await
        .expect("stack starts");
    send_commands(&stack).await;

    let output = browser.run(&stack).await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed ({}); its output is above",
        output.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(browser.artifacts.join("console-timeline.png").is_file());
}

/// An accepted registration and its retry (the same Idempotency-Key, another correlationId), a
/// contact change that puts a phone number on the officer (which the console must not show),
/// and a refusal for the live panel.
async fn send_commands(stack: &TestStack) {
    for correlation_id in ["console-accepted", "console-retry"] {
        let headers = [
            (http::CORRELATION_ID, correlation_id),
            (http::IDEMPOTENCY_KEY, "console-key"),
        ];
        let accepted = stack.register(&officer(BADGE), &headers).await;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED);
        // The timeline numbers attempts by time: a retry sent before the projection applied
        // the event would own the `applied` step.
        stack.wait_until_projected("console-accepted").await;
    }
    let contact = json!({ "badgeNumber": BADGE, "phone": PHONE });
    let changed = stack
        .send(
            "/v1/officers/contact-changes",
            &contact,
            &[(http::CORRELATION_ID, "console-contact")],
        )
        .await;
    assert_eq!(changed.status(), StatusCode::ACCEPTED);
    let mut bad = officer("B-8102");
    bad["rank"] = "Admiral".into();
    let refused = stack
        .register(&bad, &[(http::CORRELATION_ID, "console-refused")])
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Both attempts of the registration (8 + 5 steps), so the page has them all at once.
    timeline_until(stack, "console-accepted", "both attempts", |t| {
        t["outcome"] == "projected" && t["steps"].as_array().map(Vec::len) == Some(13)
    })
    .await;
    timeline_until(stack, "console-contact", "projected", |t| {
        t["outcome"] == "projected"
    })
    .await;
}

/// Node, Chromium and the script, found before any broker starts, so a machine without
/// them fails at once with what to install.
struct BrowserTest {
    node: PathBuf,
    chromium: PathBuf,
    script_dir: PathBuf,
    artifacts: PathBuf,
}

impl BrowserTest {
    fn locate() -> Self {
        let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let node = tool("ACKGATE_NODE", "node");
        assert_node_20(&node);
        let chromium = tool("ACKGATE_CHROMIUM", "/usr/bin/chromium");
        assert!(
            chromium.is_file(),
            "Chromium not found at {} (set ACKGATE_CHROMIUM, or install Debian's chromium: \
             scripts/test does, through ensure_chromium in scripts/lib.sh)",
            chromium.display()
        );
        assert!(
            script_dir.join("node_modules/playwright-core").is_dir(),
            "playwright-core is not installed in {} (scripts/test installs it: \
             `source scripts/lib.sh && ensure_console_test_deps`)",
            script_dir.display()
        );
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        );
        let artifacts = target.join("test-artifacts/console");
        Self {
            node,
            chromium,
            script_dir,
            artifacts,
        }
    }

    async fn run(&self, stack: &TestStack) -> std::process::Output {
        // No screenshot of an earlier run may pass for one of this run.
        let _ = std::fs::remove_dir_all(&self.artifacts);
        let hidden = format!("{EMAIL},{PHONE}");
        let mut command = tokio::process::Command::new(&self.node);
        command
            .current_dir(&self.script_dir)
            .arg("console.test.mjs")
            .args(["--edge", stack.edge_url()])
            .args(["--accepted", "console-accepted", "--badge", BADGE])
            .args(["--refused", "console-refused", "--hidden", &hidden])
            .arg("--chromium")
            .arg(&self.chromium)
            .arg("--artifacts")
            .arg(&self.artifacts)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().expect("node starts");
        tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
            .await
            .expect("the browser test finishes within 3 minutes")
            .expect("the browser test's output is read")
    }
}

/// The path in `env`, else `default`.
fn tool(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// playwright-core needs Node.js 20 or newer.
fn assert_node_20(node: &Path) {
    let version = std::process::Command::new(node)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (set ACKGATE_NODE to a Node.js 20+ binary): {e}",
                node.display()
            )
        });
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "{} is Node.js {version:?}; the console test needs 20+",
        node.display()
    );
}
