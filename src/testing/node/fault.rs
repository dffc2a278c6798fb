//! Fault injection: the faults scripted for the next requests of a code, standing delays and
//! the black hole, and taking the fault a request meets.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Node;

/// A scripted fault for the next request of a code.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    Fail(i32, String),
    /// Handle the request, then answer with this code instead of SUCCESS (FLUSH_DISK_TIMEOUT
    /// and friends: the message is stored, the status says it is not safe yet).
    Status(i32),
    /// Handle the request, then answer with a header that cannot be read.
    UnreadableHeader,
    Delay(Duration),
    Reset,
    Malformed,
    Close,
}

#[derive(Default)]
pub(crate) struct Faults {
    pub(crate) next: HashMap<i32, VecDeque<Fault>>,
    pub(crate) standing_delay: HashMap<i32, Duration>,
    pub(crate) black_hole: bool,
}

impl Faults {
    pub(super) fn is_empty(&self) -> bool {
        self.next.is_empty() && self.standing_delay.is_empty() && !self.black_hole
    }
}

impl Node {
    /// Changes the scripted faults.
    pub(crate) fn with_faults(&self, change: impl FnOnce(&mut Faults)) {
        let mut faults = self.faults.lock();
        change(&mut faults);
        self.any_fault.store(!faults.is_empty(), Ordering::Release);
    }

    /// Takes the next scripted fault for `code`; `Err(())` for the black hole.
    pub(super) fn next_fault(&self, code: i32) -> Result<Option<Fault>, ()> {
        if !self.any_fault.load(Ordering::Acquire) {
            return Ok(None);
        }
        let mut faults = self.faults.lock();
        if faults.black_hole {
            return Err(());
        }
        let fault = match faults.next.get_mut(&code) {
            Some(queue) => {
                let f = queue.pop_front();
                if queue.is_empty() {
                    faults.next.remove(&code);
                }
                f
            }
            None => None,
        };
        let fault = fault.or_else(|| faults.standing_delay.get(&code).map(|d| Fault::Delay(*d)));
        self.any_fault.store(!faults.is_empty(), Ordering::Release);
        Ok(fault)
    }
}
