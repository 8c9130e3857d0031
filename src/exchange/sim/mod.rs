//! The embedded Binance-like simulator (to be written).
