//! The open model: iterations arrive at the pattern's rate.
//!
//! Every generator thread walks the scenario's whole arrival schedule and
//! keeps the arrivals that are its own: those in this process's share
//! (see [`super::share`]), dealt out to the threads in proportion to their
//! share of the `max_users` slots. Whether an arrival is this process's is
//! decided when it is due, by the share in effect at that instant, so all
//! threads agree on it even while the share changes.
//!
//! A due arrival goes to a free slot; when none is free it waits in a
//! bounded queue and its latency still counts from the instant it was due
//! (wrk2's correction for coordinated omission), or, with
//! `on_saturation = "drop"`, it is counted as dropped. Arrivals still
//! waiting when the run stops, and those due before the stop that the
//! generator had not reached, are dropped too: `started + dropped` is
//! exactly the arrivals this process was due to run.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::share::Timeline;
use super::user::{IterationEnd, User, UserContext};
use super::{Running, ShardContext, Shared};
use crate::plan::{OpenModel, Saturation};
use crate::schedule::{drive, Arrivals};

/// Arrivals handed to this thread's slots.
#[derive(Default)]
struct Queue {
    due: RefCell<VecDeque<Instant>>,
    wake: Notify,
    /// Slots waiting for work.
    idle: Cell<usize>,
    /// The dispatcher is done; idle slots may leave.
    closed: Cell<bool>,
    /// A unique data feeder ran out: no more iterations can run.
    exhausted: Cell<bool>,
}

pub async fn run(ctx: &ShardContext, model: &OpenModel, users: UserContext, active: Rc<Cell<u64>>) {
    let queue = Rc::new(Queue::default());
    let mut slots = tokio::task::JoinSet::new();
    let mine = ctx.share(model.max_users);
    for &id in &mine {
        slots.spawn_local(slot(
            User::new(id, &users),
            queue.clone(),
            &users,
            active.clone(),
        ));
    }

    // This thread's share of the wait queue follows its share of the slots.
    let share = mine.len() as f64 / model.max_users as f64;
    let max_waiting = (model.max_waiting as f64 * share).ceil() as u64;
    let start = Instant::from_std(ctx.start);
    let shared = &users.shared;
    let mut deal = Dealer::new(ctx, model.max_users);
    let mut arrivals = Arrivals::new(ctx.plan.load.shape.clone(), ctx.plan.load.duration, 0.0);
    // A process that joins late starts where the schedule was when it
    // joined (what was due before is not its: see `ShareState::joining`).
    arrivals.skip_to(shared.began);
    let driven = drive(&mut arrivals, start, &users.stop, |n, due| {
        let at = due - start;
        // Due at or after the stop: not run, and not this run's to drop.
        if shared.stopped_at().is_some_and(|stop| at >= stop) {
            return false;
        }
        if !deal.is_mine(n, at) {
            return true;
        }
        if queue.exhausted.get() || !shared.take_iteration() {
            return false;
        }
        let waiting = queue.due.borrow().len();
        let free_slot = queue.idle.get() > waiting;
        let may_wait = model.on_saturation == Saturation::Wait && (waiting as u64) < max_waiting;
        if free_slot || may_wait {
            queue.due.borrow_mut().push_back(due);
            queue.wake.notify_one();
        } else {
            users.recorder.borrow_mut().dropped += 1;
        }
        true
    })
    .await;
    queue.closed.set(true);
    queue.wake.notify_waiters();
    super::join_all(slots).await;
    // Due but never started: the run ended while they waited.
    let mut dropped = queue.due.borrow_mut().drain(..).count() as u64;
    // Due before the stop but never handed over, because the generator was
    // behind when the run stopped. (Not when the budget or the data ran
    // out, in any thread: those arrivals were never going to run.)
    if let Some(stopped_at) = shared.stopped_at() {
        if !shared.used_up() {
            let before_stop = driven
                .left
                .into_iter()
                .chain(std::iter::from_fn(|| {
                    let n = arrivals.next_index();
                    arrivals.next().map(|at| (n, at))
                }))
                .take_while(|(_, at)| *at < stopped_at);
            dropped += before_stop.filter(|(n, at)| deal.is_mine(*n, *at)).count() as u64;
        }
    }
    users.recorder.borrow_mut().dropped += dropped;
}

/// One slot: runs the queued arrivals, one iteration at a time.
fn slot(
    user: User,
    queue: Rc<Queue>,
    users: &UserContext,
    active: Rc<Cell<u64>>,
) -> impl std::future::Future<Output = ()> + 'static {
    let stop = users.stop.clone();
    let recorder = users.recorder.clone();
    let watch = user.watch();
    watch.until_hard_stop(user.lifetime(async move |user: &mut User| {
        let mut busy = Running::new(active);
        loop {
            // After the stop, queued arrivals stay queued: they are
            // counted as dropped, not started.
            if stop.is_cancelled() {
                return;
            }
            let next = queue.due.borrow_mut().pop_front();
            match next {
                Some(due) => {
                    busy.set(true);
                    let end = user.iteration(Some(due.into_std()), false).await;
                    busy.set(false);
                    match end {
                        // Due, handed over, but nothing to run it with.
                        IterationEnd::DataExhausted => {
                            queue.exhausted.set(true);
                            recorder.borrow_mut().dropped += 1;
                            return;
                        }
                        IterationEnd::Stopped => return,
                        // Taken from the queue as the stop came: due,
                        // never run, so dropped.
                        IterationEnd::NotStarted => {
                            recorder.borrow_mut().dropped += 1;
                            return;
                        }
                        _ => {}
                    }
                }
                None if queue.closed.get() => return,
                None => {
                    queue.idle.set(queue.idle.get() + 1);
                    tokio::select! {
                        _ = queue.wake.notified() => {}
                        _ = stop.cancelled() => {}
                    }
                    queue.idle.set(queue.idle.get() - 1);
                }
            }
        }
    }))
}

/// Decides which arrivals of the scenario are this thread's: those in the
/// process's share when due, dealt to the threads in proportion to their
/// slots by a hash of the arrival's number. The deal keeps no count, so a
/// thread that ever judged one arrival differently from the others (a
/// share change racing it) disagrees on that arrival alone.
struct Dealer<'a> {
    shared: &'a Shared,
    timeline: Timeline,
    generation: u64,
    slots: u64,
    shard: u64,
    threads: u64,
}

impl<'a> Dealer<'a> {
    fn new(ctx: &'a ShardContext, slots: u64) -> Self {
        Dealer {
            shared: &ctx.shared,
            timeline: ctx.shared.share.timeline(),
            generation: ctx.shared.share.generation(),
            slots,
            shard: ctx.shard as u64,
            threads: ctx.threads as u64,
        }
    }

    /// Whether arrival `n`, due at `at` since the start, is this thread's.
    fn is_mine(&mut self, n: u64, at: Duration) -> bool {
        let generation = self.shared.share.generation();
        if generation != self.generation {
            self.generation = generation;
            self.timeline = self.shared.share.timeline();
        }
        self.timeline.at(at).contains(n) && (mix(n) % self.slots) % self.threads == self.shard
    }
}

/// SplitMix64's finalizer: spreads arrival numbers evenly over the slots,
/// independently of where they lie in the share.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
