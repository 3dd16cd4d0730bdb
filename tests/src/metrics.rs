//! Reading a service's `/metrics`: scraping it, validating it with `promtool check
//! metrics` (Debian's `prometheus` package, installed by `scripts/test`), and finding a
//! sample's value.

use std::io::Write;

use anyhow::{Context, Result, bail};

/// The exposition at `<base>/metrics` (the classic text format: no `Accept` asked).
pub async fn scrape(http: &reqwest::Client, base: &str) -> Result<String> {
    let response = http.get(format!("{base}/metrics")).send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{base}/metrics answered {status}: {text}");
    }
    Ok(text)
}

/// Runs `promtool check metrics` on `exposition`; an error carries its findings.
pub fn promtool_check(exposition: &str) -> Result<()> {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("promtool is not installed: run ./scripts/test, which installs it")?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(exposition.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The value of the sample `name` whose labels include every `labels` pair, if any (the
/// sum, when several match).
pub fn value(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let matching = exposition.lines().filter_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = series.split_once('{').unwrap_or((series, ""));
        let all = wanted.iter().all(|pair| label_text.contains(pair.as_str()));
        (metric == name && all).then(|| value.parse::<f64>().ok())?
    });
    matching.reduce(|a, b| a + b)
}
