//! The embedded Binance-like simulator (being written).

/// The embedded simulator gateway and its quotes.
pub fn connect_embedded(_config: &crate::config::Config) -> Result<super::Connected, String> {
    Err("the simulator is not built yet".into())
}
