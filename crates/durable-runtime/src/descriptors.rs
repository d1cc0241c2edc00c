//! The process's file descriptors: raising the soft limit to the hard one, and splitting what
//! there is between object databases and connections, with a reserve kept back.
//!
//! Every open object database holds four descriptors (the database, its WAL, SQLite's
//! shared-memory index, and the WAL handle the durability worker fsyncs and the commit log
//! reads each commit's frames through); every HTTP or
//! WebSocket connection holds one. Running out of descriptors fails whatever asks next,
//! often something unrelated (accepting a connection, `/health`), so the budget is decided
//! up front: [`DescriptorBudget::RESERVED`] stay free for the process itself (logs, the
//! alarm index, the commit log's archive, accepting and refusing connections), half of the
//! rest goes to databases and
//! half to connections.

/// File descriptors one open object database holds.
pub const FDS_PER_DATABASE: u64 = 4;

/// How the process's file descriptors are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorBudget {
    /// The soft `RLIMIT_NOFILE` in force.
    pub limit: u64,
    /// Object databases that may be open at once.
    pub databases: usize,
    /// Connections (HTTP and WebSocket) that may be open at once.
    pub connections: usize,
}

impl DescriptorBudget {
    /// Descriptors never given to databases or connections.
    pub const RESERVED: u64 = 80;

    /// The budget of a process allowed `limit` descriptors.
    pub fn for_limit(limit: u64) -> Self {
        let shared = limit.saturating_sub(Self::RESERVED);
        let databases = (shared / 2 / FDS_PER_DATABASE).max(1);
        let connections = (shared - shared / 2).max(1);
        Self {
            limit,
            databases: usize::try_from(databases).unwrap_or(usize::MAX),
            connections: usize::try_from(connections).unwrap_or(usize::MAX),
        }
    }

    /// The budget of this process, after raising its soft limit to the hard limit.
    pub fn of_process() -> Self {
        Self::for_limit(raise_nofile_limit())
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the soft default is often 1,024 while
/// the hard one is far higher); returns the soft limit in force afterwards.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let soft = current.current.unwrap_or(u64::MAX);
    let Some(hard) = current.maximum else {
        // No hard limit: take a generous number rather than "infinite".
        return soft.min(1 << 20);
    };
    if soft >= hard {
        return soft;
    }
    let raised = rustix::process::Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::debug!(from = soft, to = hard, "raised the file-descriptor limit");
            hard
        }
        Err(err) => {
            tracing::warn!(soft, hard, error = %err, "the file-descriptor limit could not be raised");
            soft
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_a_reserve_and_splits_the_rest() {
        let cases = [
            (1_024, 118, 472),
            (20_000, 2_490, 9_960),
            (64, 1, 1),
            (0, 1, 1),
        ];
        for (limit, databases, connections) in cases {
            let budget = DescriptorBudget::for_limit(limit);
            assert_eq!(
                (budget.databases, budget.connections),
                (databases, connections),
                "{limit}"
            );
            if limit > DescriptorBudget::RESERVED {
                let used = budget.databases as u64 * FDS_PER_DATABASE + budget.connections as u64;
                assert!(
                    used + DescriptorBudget::RESERVED <= limit,
                    "{limit}: {used}"
                );
            }
        }
    }
}
