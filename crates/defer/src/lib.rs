//! Go-style defer for Rust (under construction).
#![cfg_attr(not(feature = "std"), no_std)]
