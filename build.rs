fn main() {
    // Only the Node-API build needs the linker setup; core tests run without it.
    if std::env::var_os("CARGO_FEATURE_NODE").is_some() {
        napi_build::setup();
    }
}
