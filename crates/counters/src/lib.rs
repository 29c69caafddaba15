//! counters (under construction).
#![forbid(unsafe_code)]
