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
use super::{Running, ShardContext};
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
        let mut user = User::new(id, &users);
        let (queue, stop, active) = (queue.clone(), users.stop.clone(), active.clone());
        let user_recorder = users.recorder.clone();
        let watch = user.watch();
        slots.spawn_local(watch.until_hard_stop(async move {
            let mut busy = Running::new(active);
            loop {
                // After the stop, queued arrivals stay queued: they are
                // counted as dropped below, not started.
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
                            IterationEnd::DataExhausted => {
                                queue.exhausted.set(true);
                                return;
                            }
                            IterationEnd::Stopped => return,
                            // Taken from the queue as the stop came: due,
                            // never run, so dropped.
                            IterationEnd::NotStarted => {
                                busy.set(false);
                                user_recorder.borrow_mut().dropped += 1;
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
        }));
    }

    // This thread's share of the rate and of the wait queue follows its
    // share of the slots, so no thread is asked for more than it can hold.
    let share = mine.len() as f64 / model.max_users as f64;
    let max_waiting = (model.max_waiting as f64 * share).ceil() as u64;
    let shape = ctx.plan.load.shape.scaled(share);
    let offset = ctx.shard as f64 / ctx.threads as f64;
    let start = Instant::from_std(ctx.start);
    let mut budget_spent = false;
    let arrivals = Arrivals::new(shape.clone(), ctx.plan.load.duration, offset);
    let handed = drive(arrivals, start, &users.stop, |due| {
        if queue.exhausted.get() {
            return false;
        }
        if !users.shared.take_iteration() {
            budget_spent = true;
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
    let mut dropped = 0;
    // Due but never started: the run ended while they waited.
    dropped += queue.due.borrow_mut().drain(..).count() as u64;
    // Due before the stop but never handed over, because the generator was
    // behind when the run stopped.
    if let Some(stopped_at) = users.shared.stopped_at() {
        if !budget_spent && !queue.exhausted.get() {
            let due = Arrivals::new(shape, ctx.plan.load.duration, offset)
                .take_while(|at| *at < stopped_at)
                .count() as u64;
            dropped += due.saturating_sub(handed);
        }
    }
    users.recorder.borrow_mut().dropped += dropped;
}
