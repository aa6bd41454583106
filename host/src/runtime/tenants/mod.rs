//! Sharing one host between pipelines, each a tenant: plugin calls take
//! turns on a fixed number of call slots, and the linear memory of every
//! plugin instance counts against the host's memory limit. A pipeline gets
//! a share of both by its weight (`weight`, 1 unless set) while others
//! want them, so one whose plugin loops, leaks or is slow takes its share
//! and no more.
//!
//! Calls: a tenant may start a call while it runs fewer than its share
//! (the slots times its weight, divided by the weights of the tenants
//! active now), or when a free slot is
//! not held back for another active tenant below its share; and never on a
//! slot held back for an active tenant below its share that has used less
//! slot time lately. A tenant that called within [`ACTIVE_WINDOW`] counts
//! as active, so the slot a short call gives back is still there for that
//! tenant's next call instead of going to a neighbour that would keep it
//! for a whole epoch tick: with more tenants than slots, a light pipeline
//! keeps a slot while the heavy ones take turns on the rest. A call above
//! its tenant's share gives its slot up at its next epoch tick when
//! another tenant waits, and waits in turn.
//!
//! Memory: a tenant's instances together may hold the host's limit times
//! its weight, divided by the pipelines' weights; growth past that is
//! refused, and the plugin
//! fails the call as out of memory, as it does at its own per-instance
//! limit.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long after its last call a tenant still counts as active, keeping
/// its share of the slots free for its next call.
const ACTIVE_WINDOW: Duration = Duration::from_millis(100);

/// The host's call slots and memory, shared by every tenant.
pub struct HostShares {
    slots: usize,
    memory_limit: usize,
    memory_used: AtomicUsize,
    state: Mutex<SlotState>,
    next_tenant: AtomicU64,
    /// The weights of the tenants that are pipelines, summed: the memory
    /// limit is shared among them.
    pipeline_weights: AtomicUsize,
}

#[derive(Default)]
struct SlotState {
    /// Slots not running a call; below zero for a moment when a call
    /// cancelled while waiting takes back the slot it gave up.
    free: isize,
    tenants: BTreeMap<u64, TenantSlots>,
    next_waiter: u64,
}

struct TenantSlots {
    weight: usize,
    running: usize,
    /// Calls waiting for a slot, first come first served.
    waiting: VecDeque<Waiter>,
    last_wanted: Instant,
    /// When the running calls took their slots, summed (seconds since
    /// [`EPOCH`]): with `running`, how long they have held them so far.
    started_sum: f64,
    /// Slot time of calls that gave their slots back, in seconds, halved
    /// every [`USAGE_HALF_LIFE`] from `used_at` on.
    used: f64,
    used_at: f64,
}

/// How fast past slot time stops counting against a tenant.
const USAGE_HALF_LIFE: f64 = 1.0;

static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn seconds(at: Instant) -> f64 {
    at.saturating_duration_since(*EPOCH).as_secs_f64()
}

struct Waiter {
    id: u64,
    granted: oneshot::Sender<()>,
}

impl TenantSlots {
    fn new(weight: usize, now: Instant) -> Self {
        Self {
            weight,
            running: 0,
            waiting: VecDeque::new(),
            last_wanted: now,
            started_sum: 0.0,
            used: 0.0,
            used_at: seconds(now),
        }
    }

    /// Slot time lately: what finished calls held (decayed) and what the
    /// running ones hold so far.
    fn usage(&self, now: Instant) -> f64 {
        let now = seconds(now);
        let decay = 0.5f64.powf((now - self.used_at).max(0.0) / USAGE_HALF_LIFE);
        self.used * decay + self.running as f64 * now - self.started_sum
    }

    /// Slot time lately for each unit of weight: what tenants are compared
    /// by.
    fn weighted_usage(&self, now: Instant) -> f64 {
        self.usage(now) / self.weight as f64
    }

    /// Whether this tenant runs more calls for its weight than `other`.
    fn runs_more_than(&self, other: &Self) -> bool {
        self.running * other.weight > other.running * self.weight
    }

    fn take_slot(&mut self, now: Instant) {
        self.running += 1;
        self.started_sum += seconds(now);
    }

    /// One of the running calls gives its slot back; which one is not
    /// known, so it counts as having held it for the running calls'
    /// average.
    fn give_slot_back(&mut self, now: Instant) {
        if self.running == 0 {
            return;
        }
        let started = self.started_sum / self.running as f64;
        let at = seconds(now);
        let decay = 0.5f64.powf((at - self.used_at).max(0.0) / USAGE_HALF_LIFE);
        self.used = self.used * decay + (at - started).max(0.0);
        self.used_at = at;
        self.started_sum -= started;
        self.running -= 1;
    }

    fn active(&self, now: Instant) -> bool {
        self.running > 0
            || !self.waiting.is_empty()
            || now.duration_since(self.last_wanted) < ACTIVE_WINDOW
    }
}

/// The call slots a pipeline of weight `weight` may hold while pipelines
/// of `total_weight` together want calls: its part, and never none.
pub fn slot_share(slots: usize, weight: usize, total_weight: usize) -> usize {
    (slots * weight / total_weight.max(weight).max(1)).max(1)
}

/// The plugin memory the instances of a pipeline of weight `weight` may
/// hold among pipelines of `total_weight` together.
pub fn memory_share(memory_limit: usize, weight: usize, total_weight: usize) -> usize {
    let total = total_weight.max(weight).max(1);
    // In u128: a limit near usize::MAX times a weight must not overflow.
    (memory_limit as u128 * weight as u128 / total as u128) as usize
}

impl HostShares {
    /// `slots` calls run at once across the host; the instances of all
    /// tenants together hold at most `memory_limit` bytes.
    pub fn new(slots: usize, memory_limit: usize) -> Arc<Self> {
        let slots = slots.max(1);
        Arc::new(Self {
            slots,
            memory_limit,
            memory_used: AtomicUsize::new(0),
            state: Mutex::new(SlotState {
                free: slots as isize,
                ..SlotState::default()
            }),
            next_tenant: AtomicU64::new(0),
            pipeline_weights: AtomicUsize::new(0),
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    pub fn memory_limit(&self) -> usize {
        self.memory_limit
    }

    /// Linear memory held by every instance of the host.
    pub fn memory_used(&self) -> usize {
        self.memory_used.load(Ordering::Relaxed)
    }

    /// A pipeline's tenant of weight `weight`, sharing the host from now
    /// until it is dropped.
    pub fn tenant(self: &Arc<Self>, name: &str, weight: u32) -> Arc<Tenant> {
        let weight = weight.max(1) as usize;
        self.pipeline_weights.fetch_add(weight, Ordering::Relaxed);
        self.new_tenant(name, weight, true)
    }

    /// The tenant of calls and instances outside any pipeline (a plugin
    /// being validated, a benchmark): it takes no share of the memory
    /// limit from the pipelines, and may hold as much as one of weight 1.
    pub fn outside_pipelines(self: &Arc<Self>, name: &str) -> Arc<Tenant> {
        self.new_tenant(name, 1, false)
    }

    fn new_tenant(self: &Arc<Self>, name: &str, weight: usize, pipeline: bool) -> Arc<Tenant> {
        let id = self.next_tenant.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .tenants
            .insert(id, TenantSlots::new(weight, Instant::now()));
        Arc::new(Tenant {
            id,
            weight,
            pipeline,
            name: name.into(),
            host: self.clone(),
            memory_used: AtomicUsize::new(0),
            memory_refused: AtomicU64::new(0),
            slot_waits: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The share of the memory limit of a pipeline of weight `weight`.
    fn memory_share(&self, weight: usize) -> usize {
        let total = self.pipeline_weights.load(Ordering::Relaxed);
        memory_share(self.memory_limit, weight, total)
    }
}

impl SlotState {
    /// The weights of the tenants active now, summed: what the slots are
    /// shared out by.
    fn active_weight(&self, now: Instant) -> usize {
        (self.tenants.values())
            .filter(|t| t.active(now))
            .map(|t| t.weight)
            .sum()
    }

    /// Whether `tenant` may start a call on a free slot now: not on one
    /// held back for an active tenant below its share that has used less
    /// slot time lately (a light pipeline keeps a slot for its short calls
    /// while heavier ones take turns on the rest), and above its own share
    /// only on one no other active tenant below its share may need.
    fn may_take(&self, tenant: u64, slots: usize, now: Instant) -> bool {
        if self.free <= 0 {
            return false;
        }
        let Some(own) = self.tenants.get(&tenant) else {
            return false;
        };
        let active_weight = self.active_weight(now);
        let share = slot_share(slots, own.weight, active_weight);
        let own_usage = own.weighted_usage(now);
        let mut held_for_lighter = 0;
        let mut held_for_others = 0;
        for (id, other) in &self.tenants {
            if *id == tenant || !other.active(now) {
                continue;
            }
            let missing =
                slot_share(slots, other.weight, active_weight).saturating_sub(other.running);
            held_for_others += missing;
            if other.weighted_usage(now) < own_usage {
                held_for_lighter += missing;
            }
        }
        let free = self.free as usize;
        free > held_for_lighter && (own.running < share || free > held_for_others)
    }

    /// Hands free slots to waiting calls: the tenant running the fewest
    /// calls for its weight first, and among those the one that has
    /// waited longest (a
    /// call that gave its slot up at a tick queues anew), so no tenant
    /// waits behind another that keeps asking.
    fn grant(&mut self, slots: usize) {
        let now = Instant::now();
        loop {
            let next = self
                .tenants
                .iter()
                .filter(|(id, tenant)| {
                    !tenant.waiting.is_empty() && self.may_take(**id, slots, now)
                })
                .min_by(|(_, a), (_, b)| {
                    let first_waiter =
                        |tenant: &TenantSlots| tenant.waiting.front().map_or(u64::MAX, |w| w.id);
                    let fewer = (a.running * b.weight).cmp(&(b.running * a.weight));
                    fewer.then(first_waiter(a).cmp(&first_waiter(b)))
                })
                .map(|(id, _)| *id);
            let Some(id) = next else { return };
            let tenant = self.tenants.get_mut(&id).expect("chosen from the map");
            let waiter = tenant.waiting.pop_front().expect("chosen as waiting");
            tenant.take_slot(now);
            self.free -= 1;
            // A waiter dropped meanwhile removed itself under this lock, so
            // the receiver is there.
            let _ = waiter.granted.send(());
        }
    }

    /// Whether a call of `tenant` should give its slot to a waiting
    /// tenant: one that waits below its share while `tenant` runs more
    /// calls for its weight.
    fn should_yield(&self, tenant: u64, slots: usize, now: Instant) -> bool {
        let Some(own) = self.tenants.get(&tenant) else {
            return false;
        };
        let active_weight = self.active_weight(now);
        self.tenants.iter().any(|(id, other)| {
            *id != tenant
                && !other.waiting.is_empty()
                && other.running < slot_share(slots, other.weight, active_weight)
                && own.runs_more_than(other)
        })
    }
}

/// One pipeline's claim on the host: its running calls and the memory of
/// its instances.
pub struct Tenant {
    id: u64,
    weight: usize,
    /// A pipeline's, counted when the memory limit is shared out.
    pipeline: bool,
    name: Arc<str>,
    host: Arc<HostShares>,
    memory_used: AtomicUsize,
    memory_refused: AtomicU64,
    slot_waits: AtomicU64,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant").field("name", &self.name).finish()
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        if self.pipeline {
            (self.host.pipeline_weights).fetch_sub(self.weight, Ordering::Relaxed);
        }
        let mut state = self.host.lock();
        state.tenants.remove(&self.id);
        state.grant(self.host.slots);
    }
}

impl Tenant {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls of this tenant running now.
    pub fn running_calls(&self) -> usize {
        self.host
            .lock()
            .tenants
            .get(&self.id)
            .map_or(0, |tenant| tenant.running)
    }

    /// Calls that waited for a slot, at their start or after giving one
    /// up at an epoch tick.
    pub fn slot_waits(&self) -> u64 {
        self.slot_waits.load(Ordering::Relaxed)
    }

    /// Linear memory held by this tenant's instances.
    pub fn memory_used(&self) -> usize {
        self.memory_used.load(Ordering::Relaxed)
    }

    /// Memory growths refused because the tenant had reached its share of
    /// the host's limit.
    pub fn memory_refused(&self) -> u64 {
        self.memory_refused.load(Ordering::Relaxed)
    }

    /// Waits for a call slot; the call runs while the returned guard lives.
    pub async fn call_slot(self: &Arc<Self>) -> CallSlot {
        self.acquire(Cancelled::HoldsNoSlot).await;
        CallSlot {
            tenant: self.clone(),
        }
    }

    /// At an epoch tick of a running call: gives the slot to a waiting
    /// tenant with a better claim and waits for it back, or just lets
    /// other tasks run.
    pub async fn tick(self: Arc<Self>) {
        let host = &self.host;
        let gave_up = {
            let mut state = host.lock();
            let now = Instant::now();
            if state.should_yield(self.id, host.slots, now) {
                if let Some(tenant) = state.tenants.get_mut(&self.id) {
                    tenant.give_slot_back(now);
                }
                state.free += 1;
                state.grant(host.slots);
                true
            } else {
                false
            }
        };
        if gave_up {
            self.acquire(Cancelled::HoldsASlot).await;
        } else {
            tokio::task::yield_now().await;
        }
    }

    async fn acquire(&self, cancelled: Cancelled) {
        let host = &self.host;
        let (waiter, granted) = {
            let mut state = host.lock();
            let now = Instant::now();
            let slots = host.slots;
            let Some(tenant) = state.tenants.get_mut(&self.id) else {
                return;
            };
            tenant.last_wanted = now;
            let queue_empty = tenant.waiting.is_empty();
            if queue_empty && state.may_take(self.id, slots, now) {
                let tenant = state.tenants.get_mut(&self.id).expect("checked above");
                tenant.take_slot(now);
                state.free -= 1;
                return;
            }
            let id = state.next_waiter;
            state.next_waiter += 1;
            let (sender, receiver) = oneshot::channel();
            let tenant = state.tenants.get_mut(&self.id).expect("checked above");
            tenant.waiting.push_back(Waiter {
                id,
                granted: sender,
            });
            (id, receiver)
        };
        self.slot_waits.fetch_add(1, Ordering::Relaxed);
        let mut pending = PendingGrant {
            tenant: self,
            waiter,
            cancelled,
            done: false,
        };
        // The sender lives in the queue until it is granted or this wait
        // is dropped, so the channel does not close under us. A slot held
        // back for a tenant that has since gone quiet is free once its
        // window passes, with no call ending to hand it on: look again then.
        let mut granted = granted;
        while tokio::time::timeout(ACTIVE_WINDOW, &mut granted)
            .await
            .is_err()
        {
            host.lock().grant(host.slots);
        }
        pending.done = true;
    }

    fn release(&self) {
        let mut state = self.host.lock();
        if let Some(tenant) = state.tenants.get_mut(&self.id) {
            let now = Instant::now();
            tenant.give_slot_back(now);
            tenant.last_wanted = now;
        }
        state.free += 1;
        state.grant(self.host.slots);
    }

    /// Takes `bytes` more of linear memory, within the tenant's share of
    /// the host's limit; false if it would pass it.
    pub(crate) fn grow_memory(&self, bytes: usize) -> bool {
        let share = self.memory_share();
        let fits = self
            .memory_used
            .try_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= share)
            })
            .is_ok();
        if fits {
            self.host.memory_used.fetch_add(bytes, Ordering::Relaxed);
        } else {
            self.memory_refused.fetch_add(1, Ordering::Relaxed);
        }
        fits
    }

    /// Counts `bytes` an instance already holds, moved from another tenant.
    pub(crate) fn take_memory(&self, bytes: usize) {
        self.memory_used.fetch_add(bytes, Ordering::Relaxed);
        self.host.memory_used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Gives back memory of instances that are gone.
    pub(crate) fn shrink_memory(&self, bytes: usize) {
        self.memory_used.fetch_sub(bytes, Ordering::Relaxed);
        self.host.memory_used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// This tenant's share of the host's memory limit now.
    pub fn memory_share(&self) -> usize {
        self.host.memory_share(self.weight)
    }

    /// The tenant's holdings now, for the metrics.
    pub fn sample(&self) -> crate::metrics::TenantSample {
        crate::metrics::TenantSample {
            running_calls: self.running_calls(),
            slot_waits: self.slot_waits(),
            memory_bytes: self.memory_used(),
            memory_share: self.memory_share(),
            memory_refused: self.memory_refused(),
        }
    }

    /// The host's memory limit for all plugin instances.
    pub fn host_memory_limit(&self) -> usize {
        self.host.memory_limit()
    }
}

/// What a wait for a slot that is dropped (its call's deadline passed)
/// leaves behind.
#[derive(Clone, Copy)]
enum Cancelled {
    /// Before its call started: nothing; a slot granted meanwhile goes
    /// back.
    HoldsNoSlot,
    /// A running call that gave its slot up at a tick: the call's
    /// [`CallSlot`] gives one back when it is dropped, so the wait leaves
    /// the call holding one, even if that runs a slot over for a moment.
    HoldsASlot,
}

/// A call waiting for a slot.
struct PendingGrant<'a> {
    tenant: &'a Tenant,
    waiter: u64,
    cancelled: Cancelled,
    done: bool,
}

impl Drop for PendingGrant<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let host = &self.tenant.host;
        let mut state = host.lock();
        let Some(tenant) = state.tenants.get_mut(&self.tenant.id) else {
            return;
        };
        let before = tenant.waiting.len();
        tenant.waiting.retain(|waiter| waiter.id != self.waiter);
        let granted = tenant.waiting.len() == before;
        match (self.cancelled, granted) {
            (Cancelled::HoldsNoSlot, true) => {
                tenant.give_slot_back(Instant::now());
                state.free += 1;
                state.grant(host.slots);
            }
            (Cancelled::HoldsASlot, false) => {
                tenant.take_slot(Instant::now());
                state.free -= 1;
            }
            (Cancelled::HoldsNoSlot, false) | (Cancelled::HoldsASlot, true) => {}
        }
    }
}

/// A running call's slot, given back when it is dropped.
pub struct CallSlot {
    tenant: Arc<Tenant>,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.tenant.release();
    }
}

#[cfg(test)]
mod tests;
