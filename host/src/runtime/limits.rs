//! Per-plugin resource limits and the store-side bookkeeping that lets the
//! host tell *why* a call failed.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::tenants::Tenant;

/// Default ceiling for a plugin's linear memory.
pub const fn default_max_memory_bytes() -> u64 {
    // Generous for handlers that parse JSON or hold small lookup tables, small
    // enough that a hundred plugins cannot exhaust a 24 GiB host.
    64 << 20
}

/// Default wall-clock budget for one call into a plugin.
pub const fn default_call_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The limits one plugin runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLimits {
    /// Largest linear memory the plugin may grow to, in bytes.
    pub max_memory_bytes: u64,
    /// Wall-clock deadline for one `init` or `handle` call.
    pub call_timeout: Duration,
    /// Fuel (roughly, WebAssembly instructions) for one call; `None` is
    /// unmetered. Needs fuel metering enabled on the engine.
    pub fuel_per_call: Option<u64>,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: default_max_memory_bytes(),
            call_timeout: default_call_timeout(),
            fuel_per_call: None,
        }
    }
}

/// Which limit refused a memory growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryRefusal {
    /// The plugin's own limit for one instance.
    Instance,
    /// The pipeline's share of the host's memory for all plugin instances.
    HostShare,
}

/// Refuses memory growth past the plugin's limit, or past its tenant's
/// share of the host's, and remembers that it did, so that the trap a guest
/// raises when its allocator fails is reported as out-of-memory rather than
/// as a generic trap. The instance's memory counts against its tenant until
/// the instance is dropped.
pub struct MemoryLimiter {
    max_memory_bytes: usize,
    refused: Option<MemoryRefusal>,
    peak_memory_bytes: usize,
    tenant: Arc<Tenant>,
    /// Bytes counted against the tenant: every memory's size.
    accounted: usize,
}

impl MemoryLimiter {
    pub fn new(max_memory_bytes: u64, tenant: Arc<Tenant>) -> Self {
        Self {
            max_memory_bytes: usize::try_from(max_memory_bytes).unwrap_or(usize::MAX),
            refused: None,
            peak_memory_bytes: 0,
            tenant,
            accounted: 0,
        }
    }

    pub fn refused(&self) -> Option<MemoryRefusal> {
        self.refused
    }

    /// Counts the instance's memory against `tenant` from now on.
    pub fn move_to(&mut self, tenant: &Arc<Tenant>) {
        if Arc::ptr_eq(&self.tenant, tenant) {
            return;
        }
        self.tenant.shrink_memory(self.accounted);
        tenant.take_memory(self.accounted);
        self.tenant = tenant.clone();
    }

    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// The largest linear memory this instance has had, in bytes.
    pub fn peak_memory_bytes(&self) -> usize {
        self.peak_memory_bytes
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        self.tenant.shrink_memory(self.accounted);
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.refused = Some(MemoryRefusal::Instance);
            return Ok(false);
        }
        let growth = desired.saturating_sub(current);
        if !self.tenant.grow_memory(growth) {
            self.refused = Some(MemoryRefusal::HostShare);
            return Ok(false);
        }
        self.accounted += growth;
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a plugin that needs a million of
        // them is broken or hostile.
        Ok(desired <= 1_000_000)
    }
}
