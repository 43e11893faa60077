//! Headless Chromium for the browser tests, through the ChromeDriver the test command starts
//! (`scripts/services/chromium.sh`).

/// Starts a headless Chromium session through `OFFBOARD_TEST_WEBDRIVER`, with the flags the
/// test command's machine needs (`--headless=new`, `--no-sandbox` as CI runs as root,
/// `--disable-gpu`, `--disable-dev-shm-usage`) and the binary `OFFBOARD_TEST_CHROMIUM` names.
/// `extra_args` are added to Chromium's arguments; `options` are merged into
/// `goog:chromeOptions` (e.g. `mobileEmulation`).
///
/// # Panics
/// When `OFFBOARD_TEST_WEBDRIVER` is not set (tests that need a browser fail loudly, naming
/// how to get one) or the session cannot start.
pub async fn chromium(
    extra_args: &[&str],
    options: serde_json::Map<String, serde_json::Value>,
) -> fantoccini::Client {
    let webdriver = std::env::var("OFFBOARD_TEST_WEBDRIVER").unwrap_or_else(|_| {
        panic!(
            "OFFBOARD_TEST_WEBDRIVER is not set: run the tests with ./scripts/test, which \
             starts chromedriver (scripts/services/chromium.sh), or start it by hand"
        )
    });
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
    ];
    args.extend_from_slice(extra_args);
    let mut chrome = options;
    chrome.insert("args".into(), serde_json::json!(args));
    if let Ok(binary) = std::env::var("OFFBOARD_TEST_CHROMIUM") {
        chrome.insert("binary".into(), serde_json::json!(binary));
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), serde_json::json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::Value::Object(chrome),
    );
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&webdriver)
        .await
        .unwrap_or_else(|e| panic!("cannot start Chromium through {webdriver}: {e}"))
}
