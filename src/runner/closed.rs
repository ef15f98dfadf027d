//! The closed model: users loop over their flow; the pattern says how many.
//!
//! User `i` (numbered across all threads) runs while `i` is below the
//! pattern's current user count and parks otherwise, so a ramp adds users
//! in order and removes the newest first. A parked user finishes its
//! iteration before it parks.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::watch;

use super::user::{IterationEnd, User, UserContext};
use super::{Running, ShardContext};

/// How often the user count is recomputed from the pattern.
const CONTROL_EVERY: Duration = Duration::from_millis(100);

pub async fn run(ctx: &ShardContext, users: UserContext, active: Rc<Cell<u64>>) {
    let shape = &ctx.plan.load.shape;
    let wanted = |elapsed: Duration| shape.value_at(elapsed).round() as u64;
    let (target_tx, target_rx) = watch::channel(wanted(Duration::ZERO));
    let mut tasks = tokio::task::JoinSet::new();
    for id in ctx.share(ctx.plan.load.users) {
        let mut user = User::new(id, &users);
        let mut target = target_rx.clone();
        let (shared, stop, active) = (users.shared.clone(), users.stop.clone(), active.clone());
        let watch = user.watch();
        tasks.spawn_local(watch.until_hard_stop(async move {
            // Counted as active from when it runs until it parks or ends,
            // including the moments between its iterations.
            let mut running = Running::new(active);
            loop {
                // Park while the pattern wants fewer users than this one's number.
                while user.id >= *target.borrow_and_update() {
                    running.set(false);
                    tokio::select! {
                        changed = target.changed() => if changed.is_err() { return },
                        _ = stop.cancelled() => return,
                    }
                }
                running.set(true);
                if stop.is_cancelled() || !shared.take_iteration() {
                    return;
                }
                let end = user.iteration(None, true).await;
                if matches!(
                    end,
                    IterationEnd::Stopped | IterationEnd::NotStarted | IterationEnd::DataExhausted
                ) {
                    return;
                }
                // A user whose requests all end at once (an instant failure,
                // say) must not starve the thread's other tasks. This yields
                // only once the task has used up its budget, not on every
                // iteration.
                tokio::task::consume_budget().await;
            }
        }));
    }
    let control = async {
        let mut tick = tokio::time::interval(CONTROL_EVERY);
        loop {
            tick.tick().await;
            let now = wanted(ctx.start.elapsed());
            target_tx.send_if_modified(|t| std::mem::replace(t, now) != now);
        }
    };
    tokio::select! {
        _ = control => {}
        _ = super::join_all(tasks) => {}
    }
}
