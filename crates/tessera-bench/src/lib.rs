//! Tessera's benchmarks.
//!
//! The criterion benchmarks in `benches/` time pure functions in-process:
//!
//! ```text
//! cargo bench -p tessera-bench --bench token            # minting per algorithm, client authentication
//! cargo bench -p tessera-bench --bench token_endpoint   # a whole client-credentials request through the provider
//! cargo bench -p tessera-bench --bench load             # req/s over loopback
//! cargo bench -p tessera-bench --bench verify           # the guard's cached verification next to raw checks
//! ```
//!
//! The `floor` binary is a minimal token endpoint, the reference the load
//! benchmark compares Tessera with.

pub mod browser;
pub mod floor;
pub mod http;
pub mod load;
pub mod process;
pub mod procfs;
pub mod report;
