//! The Binance Spot REST gateway (to be written).
