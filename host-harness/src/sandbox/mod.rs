//! The sandbox each call runs in.
//!
//! | module | what |
//! |---|---|
//! | [`engine`] | the engine every call shares: pooling allocator sized for the calls in flight, epoch interruption and its clock |
//! | [`store`] | one call's store: a bare WASI context, the scheme in `wasi:config`, the outbound door, memory and CPU limits; traps reported in one line |
//! | [`convert`] | the component's WIT answer in the host's types, every destination re-validated |
//!
//! [`crate::router`] puts them together: a router loads the component once, and routes each
//! call in a fresh store and instance.

pub mod convert;
pub mod engine;
pub mod store;
