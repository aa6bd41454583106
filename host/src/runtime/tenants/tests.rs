//! The call slots' and memory shares' rules, without a plugin.

use super::*;

fn running(tenant: &Arc<Tenant>) -> usize {
    tenant.running_calls()
}

#[tokio::test]
async fn a_tenant_alone_may_use_every_slot() {
    let host = HostShares::new(2, 1 << 30);
    let alone = host.tenant("alone", 1);
    let _first = alone.call_slot().await;
    let _second = alone.call_slot().await;
    assert_eq!(running(&alone), 2);
    assert_eq!(alone.slot_waits(), 0);
}

#[tokio::test]
async fn a_tenant_above_its_share_gives_a_slot_up_at_its_next_tick() {
    let host = HostShares::new(2, 1 << 30);
    let hog = host.tenant("hog", 1);
    let healthy = host.tenant("healthy", 1);
    let _first = hog.call_slot().await;
    let _second = hog.call_slot().await;

    // Both slots are taken: the healthy tenant's call waits...
    let waiting = tokio::spawn({
        let healthy = healthy.clone();
        async move { healthy.call_slot().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());

    // ...until one of the hog's calls reaches an epoch tick.
    let ticked = tokio::spawn(hog.clone().tick());
    let slot = waiting.await.expect("the healthy call gets a slot");
    assert_eq!(running(&healthy), 1);
    assert_eq!(running(&hog), 1, "the ticking call gave its slot up");
    assert!(!ticked.is_finished(), "and waits for one");

    // A slot the healthy tenant gives back is kept for its next call
    // while it is active, not handed back to the hog at once.
    drop(slot);
    tokio::task::yield_now().await;
    assert!(!ticked.is_finished());
    let _again = healthy.call_slot().await;
    assert_eq!(healthy.slot_waits(), 1, "only the first call waited");

    // Once the healthy tenant is quiet, the hog may take every slot
    // again.
    drop(_again);
    tokio::time::timeout(ACTIVE_WINDOW * 5, ticked)
        .await
        .expect("the hog's call resumes once the healthy tenant is quiet")
        .expect("the tick finishes");
    assert_eq!(running(&hog), 2);
}

#[tokio::test]
async fn tenants_that_keep_asking_do_not_starve_one_that_waits() {
    let host = HostShares::new(1, 1 << 30);
    // Created first, so a tie-break by tenant would favour them.
    let first = host.tenant("first", 1);
    let second = host.tenant("second", 1);
    let patient = host.tenant("patient", 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let wait_for_slot = |tenant: &Arc<Tenant>| {
        let (tenant, order) = (tenant.clone(), order.clone());
        tokio::spawn(async move {
            let _slot = tenant.call_slot().await;
            order.lock().unwrap().push(tenant.name().to_owned());
        })
    };
    let held = first.call_slot().await;
    let mut waits = Vec::new();
    // The second and the patient one wait; then the first asks again
    // before it gives its slot back, and queues behind both.
    for tenant in [&second, &patient, &first] {
        waits.push(wait_for_slot(tenant));
        tokio::task::yield_now().await;
    }
    drop(held);
    for wait in waits {
        wait.await.expect("every call gets a slot");
    }
    assert_eq!(*order.lock().unwrap(), ["second", "patient", "first"]);
}

#[tokio::test]
async fn a_light_tenant_keeps_a_slot_while_heavier_ones_take_turns_on_the_rest() {
    let host = HostShares::new(2, 1 << 30);
    let heavy = [host.tenant("looping", 1), host.tenant("hungry", 1)];
    let light = host.tenant("light", 1);
    let _first = heavy[0].call_slot().await;
    let _second = heavy[1].call_slot().await;
    // The heavy calls run a while: their slot time counts.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waiting = tokio::spawn({
        let light = light.clone();
        async move { light.call_slot().await }
    });
    tokio::task::yield_now().await;
    let ticked = tokio::spawn(heavy[0].clone().tick());
    let slot = waiting.await.expect("the light call gets a slot");
    // Its slot, given back, is not handed to the heavy call waiting:
    // the light tenant's next call finds it free.
    drop(slot);
    tokio::task::yield_now().await;
    assert!(!ticked.is_finished(), "the heavy call still waits");
    let _again = light.call_slot().await;
    assert_eq!(light.slot_waits(), 1, "only the first light call waited");
    assert_eq!(running(&heavy[1]), 1);
}

#[tokio::test]
async fn a_call_cancelled_while_waiting_leaves_the_counts_right() {
    let host = HostShares::new(1, 1 << 30);
    let first = host.tenant("first", 1);
    let second = host.tenant("second", 1);
    let held = first.call_slot().await;
    let cancelled = tokio::time::timeout(Duration::from_millis(10), second.call_slot()).await;
    assert!(cancelled.is_err());
    drop(held);
    let _slot = second.call_slot().await;
    assert_eq!(running(&second), 1);
    assert_eq!(running(&first), 0);
}

#[test]
fn each_pipeline_may_hold_an_equal_share_of_the_memory_limit() {
    let host = HostShares::new(1, 100 << 20);
    let first = host.tenant("first", 1);
    let second = host.tenant("second", 1);
    let outside = host.outside_pipelines("validation");
    assert_eq!(first.memory_share(), 50 << 20);
    assert!(first.grow_memory(40 << 20));
    assert!(!first.grow_memory(20 << 20), "past its share");
    assert_eq!(first.memory_refused(), 1);
    assert!(
        second.grow_memory(50 << 20),
        "the other's share is untouched"
    );
    assert!(outside.grow_memory(10 << 20));
    assert_eq!(host.memory_used(), 100 << 20);
    first.shrink_memory(40 << 20);
    assert_eq!(first.memory_used(), 0);
    drop(second);
    assert_eq!(first.memory_share(), 100 << 20, "one pipeline left");
}

#[test]
fn shares_follow_the_weights_and_never_leave_a_pipeline_none() {
    assert_eq!(slot_share(4, 3, 4), 3);
    assert_eq!(slot_share(4, 1, 4), 1);
    assert_eq!(slot_share(4, 1, 2), 2, "equal weights, equal parts");
    assert_eq!(slot_share(1, 1, 5), 1, "never none");
    assert_eq!(memory_share(400, 3, 4), 300);
    assert_eq!(memory_share(400, 1, 0), 400, "alone");
    assert_eq!(memory_share(usize::MAX, 1000, 1000), usize::MAX);
}

#[tokio::test]
async fn a_heavier_pipeline_keeps_the_slots_its_weight_gives_it() {
    let host = HostShares::new(4, 400 << 20);
    let heavy = host.tenant("heavy", 3);
    let light = host.tenant("light", 1);
    let _light_slot = light.call_slot().await;
    let mut heavy_slots = Vec::new();
    for _ in 0..3 {
        let slot = tokio::time::timeout(ACTIVE_WINDOW / 2, heavy.call_slot());
        heavy_slots.push(
            slot.await
                .expect("three slots are the heavy pipeline's share"),
        );
    }
    assert_eq!(heavy.slot_waits(), 0);

    // The light pipeline wants a second slot; the heavy one, at its
    // share, gives none up at its tick (with equal weights it would).
    let waiting = tokio::spawn({
        let light = light.clone();
        async move { light.call_slot().await }
    });
    tokio::task::yield_now().await;
    heavy.clone().tick().await;
    assert_eq!(running(&heavy), 3);
    assert!(!waiting.is_finished());
    // A slot it gives back is still held for it while it is active...
    heavy_slots.pop();
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    // ...and goes to the light pipeline once the heavy one is quiet.
    heavy_slots.clear();
    let slot = tokio::time::timeout(ACTIVE_WINDOW * 3, waiting).await;
    drop(
        slot.expect("the light call gets a slot")
            .expect("the wait finishes"),
    );

    assert_eq!(heavy.memory_share(), 300 << 20);
    assert_eq!(light.memory_share(), 100 << 20);
}
