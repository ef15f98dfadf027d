//! Generator threads: each runs a current-thread tokio runtime whose users
//! record into one thread-local [`Snapshot`], so the hot path takes no
//! lock; once a second the thread hands its interval snapshot to the
//! collector as one of its sources.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::user::{self, UserContext};
use super::{closed, open, Shared};
use crate::engine::Connector;
use crate::metrics::Snapshot;
use crate::plan::{Model, Plan};

/// What a generator thread sends to the collector.
pub enum ShardMsg {
    /// What a thread recorded in the second ending at `second`; for its
    /// final snapshot, since then (`second` is then the last it reported).
    Interval {
        shard: usize,
        second: u64,
        snapshot: Snapshot,
    },
    /// The thread is done; nothing more will come from it.
    Done { shard: usize },
}

pub struct ShardContext {
    pub shard: usize,
    pub threads: usize,
    pub plan: Arc<Plan>,
    pub connector: Arc<Connector>,
    pub shared: Arc<Shared>,
    /// The run's (agreed) start; nothing is sent before it.
    pub start: Instant,
    pub stop: CancellationToken,
    pub hard_stop: CancellationToken,
    pub tx: mpsc::UnboundedSender<ShardMsg>,
}

impl ShardContext {
    /// This thread's share of `total` slots, spread evenly.
    pub fn share(&self, total: u64) -> Vec<u64> {
        (0..total)
            .filter(|u| *u as usize % self.threads == self.shard)
            .collect()
    }
}

pub fn run_shard(ctx: ShardContext) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds with default settings");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, shard_main(ctx));
}

async fn shard_main(ctx: ShardContext) {
    let recorder = Rc::new(RefCell::new(Snapshot::new(
        ctx.plan.metrics.len(),
        ctx.plan.load.is_open(),
    )));
    let active = Rc::new(Cell::new(0u64));
    let users = UserContext {
        plan: ctx.plan.clone(),
        connector: Arc::new(ctx.connector.for_thread()),
        shared: ctx.shared.clone(),
        recorder: recorder.clone(),
        start: ctx.start,
        stop: ctx.stop.clone(),
        hard_stop: ctx.hard_stop.clone(),
        scope: Arc::new(user::ScopeGlobals::new(&ctx.plan)),
    };
    let start = tokio::time::Instant::from_std(ctx.start);
    let work = async {
        // An agreed start may lie ahead: processes on several machines
        // begin together.
        tokio::select! {
            _ = tokio::time::sleep_until(start) => {}
            _ = ctx.stop.cancelled() => return,
        }
        match &ctx.plan.load.model {
            Model::Closed => closed::run(&ctx, users, active.clone()).await,
            Model::Open(model) => open::run(&ctx, model, users, active.clone()).await,
        }
    };
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let send = |second: u64| {
        let mut r = recorder.borrow_mut();
        r.active_users = active.get();
        let _ = ctx.tx.send(ShardMsg::Interval {
            shard: ctx.shard,
            second,
            snapshot: r.take(),
        });
    };
    let mut last_second = 0;
    tokio::pin!(work);
    loop {
        tokio::select! {
            at = tick.tick() => {
                last_second = (at - start).as_secs_f64().round() as u64;
                send(last_second);
            }
            _ = &mut work => break,
        }
    }
    // The final snapshot covers the time since the last tick, which may
    // end anywhere within a second. It is labelled with the last second
    // this thread reported, so it never claims (and closes) a second that
    // has not ended: the collector adds it to the first second still open,
    // and when the run ends gives that second its real length or folds a
    // short one into the second before it.
    send(last_second);
    let _ = ctx.tx.send(ShardMsg::Done { shard: ctx.shard });
}

/// Waits for every task of a generator thread.
pub async fn join_all(mut tasks: tokio::task::JoinSet<()>) {
    while let Some(joined) = tasks.join_next().await {
        reraise_panic(joined);
    }
}

/// A task that panicked is a bug whose counts are lost: re-raise it, so the
/// thread fails and the run reports an error instead of numbers that look
/// complete.
pub fn reraise_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// A user's share of the thread's active-user count; it leaves the count
/// when dropped, however the user's task ends.
pub(crate) struct Running {
    active: Rc<Cell<u64>>,
    on: bool,
}

impl Running {
    pub(crate) fn new(active: Rc<Cell<u64>>) -> Self {
        Running { active, on: false }
    }

    pub(crate) fn set(&mut self, on: bool) {
        if on != self.on {
            self.on = on;
            let n = self.active.get();
            self.active.set(if on { n + 1 } else { n - 1 });
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.set(false);
    }
}
