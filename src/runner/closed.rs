//! The closed model: users loop over their flow; the pattern says how many.
//!
//! User `j` (numbered across the whole scenario) runs while `j` is below
//! the pattern's current user count and `j` is in this process's share
//! (see [`super::share`]), and parks otherwise; so a ramp adds users in
//! order and removes the newest first, and processes with complementary
//! shares run complementary users. A parked user finishes its iteration
//! before it parks. Each generator thread holds the users whose number
//! leaves `shard` modulo the thread count.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::share::{Slice, Timeline};
use super::user::{IterationEnd, User, UserContext};
use super::{Running, ShardContext};

/// How often the user count is recomputed from the pattern.
const CONTROL_EVERY: Duration = Duration::from_millis(100);

/// Which users should run now.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Want {
    /// The pattern's user count for the whole scenario.
    users: u64,
    /// This process's share of them.
    slice: Slice,
}

impl Want {
    fn runs(&self, user: u64) -> bool {
        user < self.users && self.slice.contains(user)
    }
}

pub async fn run(ctx: &ShardContext, users: UserContext, active: Rc<Cell<u64>>) {
    let shape = &ctx.plan.load.shape;
    let share = &ctx.shared.share;
    let mut generation = share.generation();
    let mut timeline = share.timeline();
    let want_at = |elapsed: Duration, timeline: &Timeline| Want {
        users: shape.value_at(elapsed).round() as u64,
        slice: timeline.at(elapsed),
    };
    let (want_tx, want_rx) = watch::channel(want_at(ctx.start.elapsed(), &timeline));
    // Dropped once no iteration can start any more, which wakes and ends
    // the parked users.
    let mut want_tx = Some(want_tx);
    let mut tasks = JoinSet::new();
    let mut spawned = Spawned::new(ctx);
    let mut spawn_members = |timeline: &Timeline, tasks: &mut JoinSet<()>| {
        // Every slice, not only the latest: two changes within one tick
        // must not skip the users of the one between.
        for slice in timeline.slices() {
            spawned.spawn_members(slice, |id| {
                let user = User::new(id, &users);
                tasks.spawn_local(user_loop(user, &users, want_rx.clone(), &active));
            });
        }
    };
    spawn_members(&timeline, &mut tasks);
    let mut tick = tokio::time::interval(CONTROL_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if share.generation() != generation {
                    generation = share.generation();
                    timeline = share.timeline();
                    spawn_members(&timeline, &mut tasks);
                }
                let now = want_at(ctx.start.elapsed(), &timeline);
                if let Some(tx) = &want_tx {
                    tx.send_if_modified(|w| std::mem::replace(w, now) != now);
                }
                if ctx.shared.used_up() {
                    want_tx = None;
                }
            }
            Some(joined) = tasks.join_next() => super::reraise_panic(joined),
        }
        // Users end only when the run stops or runs out of iterations or
        // data; until then a thread without users waits for a share.
        if tasks.is_empty() && (users.stop.is_cancelled() || ctx.shared.used_up()) {
            break;
        }
    }
}

/// The users a thread has started, by number.
struct Spawned {
    started: Vec<bool>,
    shard: u64,
    threads: u64,
    /// The pattern's peak: no user numbered this or above ever runs.
    peak: u64,
}

impl Spawned {
    fn new(ctx: &ShardContext) -> Self {
        let threads = ctx.threads as u64;
        let mine = ctx.plan.load.users.div_ceil(threads) as usize;
        Spawned {
            started: vec![false; mine],
            shard: ctx.shard as u64,
            threads,
            peak: ctx.plan.load.users,
        }
    }

    /// Starts every user of this thread in `slice` not started yet.
    fn spawn_members(&mut self, slice: Slice, mut spawn: impl FnMut(u64)) {
        for (i, started) in self.started.iter_mut().enumerate() {
            let id = i as u64 * self.threads + self.shard;
            if id >= self.peak {
                break;
            }
            if !*started && slice.contains(id) {
                *started = true;
                spawn(id);
            }
        }
    }
}

/// One user's life: run iterations while wanted, park otherwise.
fn user_loop(
    user: User,
    users: &UserContext,
    mut want: watch::Receiver<Want>,
    active: &Rc<Cell<u64>>,
) -> impl std::future::Future<Output = ()> + 'static {
    let (shared, stop, active) = (users.shared.clone(), users.stop.clone(), active.clone());
    let watch = user.watch();
    watch.until_hard_stop(user.lifetime(async move |user: &mut User| {
        // Counted as active from when it runs until it parks or ends,
        // including the moments between its iterations.
        let mut running = Running::new(active);
        loop {
            while !want.borrow_and_update().runs(user.id) {
                running.set(false);
                tokio::select! {
                    changed = want.changed() => if changed.is_err() { return },
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
    }))
}
