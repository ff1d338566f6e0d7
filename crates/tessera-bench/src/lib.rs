//! Tessera's benchmarks.
//!
//! The criterion benchmarks in `benches/` time pure functions in-process:
//!
//! ```text
//! cargo bench -p tessera-bench --bench token            # minting per algorithm, client authentication
//! cargo bench -p tessera-bench --bench token_endpoint   # a whole client-credentials request through the provider
//! cargo bench -p tessera-bench --bench verify           # the guard's cached verification next to raw checks
//! ```
//!
//! The load benchmark runs the release `tessera` binary from the outside:
//! `scripts/bench-load` builds it with the `loadbench` and `floor` binaries
//! of this crate and runs `loadbench`, which provisions a server through the
//! CLI, signs people in through the login pages and drives each scenario
//! over HTTP next to `floor`, a minimal token endpoint that is the reference
//! for CPU per request (the README's "Benchmarks" section).

pub mod browser;
pub mod floor;
pub mod http;
pub mod load;
pub mod process;
pub mod procfs;
pub mod report;
