//! Pure logic of flagger-rs. Nothing in this crate performs I/O.
