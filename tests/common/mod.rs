//! Helpers shared by the integration tests.

#[allow(dead_code)]
pub mod redis;

/// `default` property-test cases, or as many as `PROPTEST_CASES` asks for.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}
