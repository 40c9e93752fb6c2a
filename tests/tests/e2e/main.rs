//! End-to-end: real calls through the real component in the real harness, against a real
//! HTTP server on 127.0.0.1 acting as the CRM. One binary, so the component is compiled once.

mod browser;
mod combinations;
mod component;
mod console;
mod contract;
mod errors;
mod exchanges;
mod fallback;
mod hostile;
mod hostile_crm;
mod http_handler;
mod json_rpc;
mod memory;
mod outcomes;
mod seams;
mod seed;
mod serve;
mod signing;
mod sip;
mod tenants;
mod tls;
