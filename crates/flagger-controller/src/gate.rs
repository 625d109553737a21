//! Leader-gated writes: every write to the cluster first checks that this process still holds the lease.
//! Losing the lease closes the gate at once, so an operator that lost leadership writes nothing more, even
//! in the middle of a reconcile.

use tokio::sync::watch;

/// The write was refused because this process is not the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader: writes are disabled")]
pub struct NotLeader;

/// Whether this process may write. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WriteGate(watch::Receiver<bool>);

impl WriteGate {
    /// A gate that follows a leader-election state (`true` while leading).
    pub fn new(leading: watch::Receiver<bool>) -> Self {
        Self(leading)
    }

    /// A gate that is always open (leader election disabled).
    pub fn open() -> Self {
        let (tx, rx) = watch::channel(true);
        // Keep the value alive after the sender is gone: a closed channel still holds its last value.
        drop(tx);
        Self(rx)
    }

    /// `Ok` while this process may write.
    pub fn check(&self) -> Result<(), NotLeader> {
        if *self.0.borrow() { Ok(()) } else { Err(NotLeader) }
    }

    /// Whether this process may write.
    pub fn is_open(&self) -> bool {
        self.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_leadership_state() {
        let (tx, rx) = watch::channel(false);
        let gate = WriteGate::new(rx);
        assert_eq!(gate.check(), Err(NotLeader));
        tx.send_replace(true);
        assert!(gate.is_open());
        tx.send_replace(false);
        assert!(!gate.is_open());
        assert!(WriteGate::open().is_open());
    }
}
