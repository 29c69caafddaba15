//! rightsize (under construction).
#![forbid(unsafe_code)]
