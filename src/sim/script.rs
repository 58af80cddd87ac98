//! Golden scenario scripts (being written).
