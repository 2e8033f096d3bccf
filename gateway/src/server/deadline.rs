//! A connection's deadline, kept lazily the way nginx keeps its timers.
//!
//! A keep-alive connection needs a deadline while it waits for a request, and its request one
//! while the upstream answers. Arming a runtime timer for each (and cancelling it) costs a lock
//! and a timer-wheel insert and removal, twice per request. Here a connection has one timer:
//! moving the deadline later is a write to a cell, and the timer is re-armed only when it fires
//! before the deadline (then it is set to the deadline) or when the deadline moves earlier than
//! the timer. A connection serving a request every few milliseconds touches the timer wheel about
//! once per timeout period. Deadlines still fire on time: the timer never runs later than one.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// One connection's deadline (see the module documentation).
pub struct Deadline {
    timer: RefCell<Pin<Box<Sleep>>>,
    /// When the timer is set to fire.
    armed: Cell<Instant>,
    /// The deadline.
    due: Cell<Instant>,
}

/// The deadline passed before the future it bounded finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl Deadline {
    /// A deadline that is not set (it lies a year ahead until [`Deadline::set`]).
    pub fn new() -> Self {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        Deadline {
            timer: RefCell::new(Box::pin(tokio::time::sleep_until(far))),
            armed: Cell::new(far),
            due: Cell::new(far),
        }
    }

    /// Sets the deadline; only a deadline earlier than the armed timer re-arms it.
    pub fn set(&self, due: Instant) {
        self.due.set(due);
        if due < self.armed.get() {
            self.timer.borrow_mut().as_mut().reset(due);
            self.armed.set(due);
        }
    }

    /// Ready once the deadline has passed.
    pub fn poll_passed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut timer = self.timer.borrow_mut();
        loop {
            ready!(timer.as_mut().poll(cx));
            let due = self.due.get();
            if due <= self.armed.get() {
                return Poll::Ready(());
            }
            // Fired for an earlier deadline that has since moved: wait for the current one.
            timer.as_mut().reset(due);
            self.armed.set(due);
        }
    }

    /// Resolves once the deadline has passed.
    pub async fn passed(&self) {
        poll_fn(|cx| self.poll_passed(cx)).await;
    }

    /// Runs `fut` until it finishes or `after` has passed since `from`.
    pub fn within<F: Future>(&self, from: Instant, after: Duration, fut: F) -> Within<'_, F> {
        self.set(from + after);
        Within {
            deadline: self,
            fut,
        }
    }
}

pin_project_lite::pin_project! {
    /// A future bounded by a [`Deadline`] (from [`Deadline::within`]). A plain struct rather than
    /// an `async fn`, which would hold the future twice (as its argument and as what it polls):
    /// it lives in every request's own future, which is moved into a box per request.
    pub struct Within<'a, F> {
        deadline: &'a Deadline,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        this.deadline.poll_passed(cx).map(|()| Err(Elapsed))
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_later_fires_at_the_new_time_and_one_moved_earlier_at_its_own() {
        let d = Deadline::new();
        let t0 = Instant::now();
        d.set(t0 + Duration::from_secs(10));
        // Later: the timer stays armed at 10 s, fires there, and waits on to 30 s.
        d.set(t0 + Duration::from_secs(30));
        d.passed().await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(30));
        // Earlier than the armed timer: re-armed.
        d.set(Instant::now() + Duration::from_secs(60));
        d.set(Instant::now() + Duration::from_secs(5));
        let t1 = Instant::now();
        d.passed().await;
        assert_eq!(Instant::now() - t1, Duration::from_secs(5));
        // Passed stays passed until it is set again.
        d.passed().await;
        assert_eq!(Instant::now() - t1, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn within_bounds_a_future() {
        let d = Deadline::new();
        let quick = d
            .within(Instant::now(), Duration::from_secs(1), async { 7 })
            .await;
        assert_eq!(quick, Ok(7));
        let t0 = Instant::now();
        let slow = d
            .within(t0, Duration::from_secs(2), std::future::pending::<()>())
            .await;
        assert_eq!(slow, Err(Elapsed));
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        // A later use with a longer bound is not cut short by the earlier one.
        let t1 = Instant::now();
        let later = d
            .within(t1, Duration::from_secs(10), async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                3
            })
            .await;
        assert_eq!(later, Ok(3));
    }
}
