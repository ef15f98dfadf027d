//! The open model: iterations arrive at the pattern's rate.
//!
//! Each thread takes an even share of the rate (offset so threads
//! interleave) and a share of the `max_users` slots. A due arrival goes to
//! a free slot; when none is free it waits in a bounded queue and its
//! latency still counts from the instant it was due (wrk2's correction for
//! coordinated omission), or, with `on_saturation = "drop"`, it is counted
//! as dropped. Arrivals still waiting when the run stops are dropped too:
//! nothing is silently lost.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::user::{IterationEnd, User, UserContext};
use super::ShardContext;
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
    for id in ctx.share(model.max_users) {
        let mut user = User::new(id, &users);
        let (queue, stop, active) = (queue.clone(), users.stop.clone(), active.clone());
        let watch = user.watch();
        slots.spawn_local(watch.until_hard_stop(async move {
            loop {
                let next = queue.due.borrow_mut().pop_front();
                match next {
                    Some(due) => {
                        active.set(active.get() + 1);
                        let end = user.iteration(Some(due.into_std()), false).await;
                        active.set(active.get() - 1);
                        match end {
                            IterationEnd::DataExhausted => {
                                queue.exhausted.set(true);
                                return;
                            }
                            IterationEnd::Stopped => return,
                            _ => {}
                        }
                    }
                    None if queue.closed.get() || stop.is_cancelled() => return,
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
        }));
    }

    let threads = ctx.threads as f64;
    let shape = ctx.plan.load.shape.scaled(1.0 / threads);
    let offset = ctx.shard as f64 / threads;
    let start = Instant::from_std(ctx.start);
    let arrivals = Arrivals::new(shape, ctx.plan.load.duration, offset);
    drive(arrivals, start, &users.stop, |due| {
        if queue.exhausted.get() || !users.shared.take_iteration() {
            return false;
        }
        let waiting = queue.due.borrow().len();
        let free_slot = queue.idle.get() > waiting;
        let may_wait =
            model.on_saturation == Saturation::Wait && (waiting as u64) < model.max_waiting;
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
    let left = queue.due.borrow_mut().drain(..).count() as u64;
    users.recorder.borrow_mut().dropped += left;
}
