//! The events we count, named as `perf list` names them.

use std::fmt;
use std::str::FromStr;

use perf_event::events::{Cache, CacheId, CacheOp, CacheResult, Hardware, Software};

use crate::Error;

/// One countable event, named as `perf stat -e` names it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub enum Event {
    /// `task-clock`: CPU time of the task, in nanoseconds.
    TaskClock,
    /// `context-switches`.
    ContextSwitches,
    /// `cpu-migrations`.
    CpuMigrations,
    /// `page-faults`.
    PageFaults,
    /// `cycles`: CPU cycles (hardware).
    Cycles,
    /// `instructions`: retired instructions (hardware).
    Instructions,
    /// `branches`: retired branch instructions (hardware).
    Branches,
    /// `branch-misses`: mispredicted branches (hardware).
    BranchMisses,
    /// `L1-dcache-loads`: level-1 data cache read accesses (hardware cache event).
    L1DcacheLoads,
    /// `L1-dcache-load-misses`: level-1 data cache read misses (hardware cache event).
    L1DcacheLoadMisses,
    /// `LLC-loads`: last-level cache read accesses (hardware cache event).
    LlcLoads,
    /// `LLC-load-misses`: last-level cache read misses (hardware cache event).
    LlcLoadMisses,
    /// `dTLB-load-misses`: data TLB read misses (hardware cache event).
    DtlbLoadMisses,
}

/// Whether an event is counted by the kernel (always available) or by the CPU's PMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Counted by the kernel in software: works without a PMU (e.g. in most VMs).
    Software,
    /// Counted by the CPU's performance monitoring unit: absent on many VMs.
    Hardware,
}

impl Event {
    /// Every event, in the order `perf stat` prints them.
    pub const ALL: [Event; 13] = [
        Event::TaskClock,
        Event::ContextSwitches,
        Event::CpuMigrations,
        Event::PageFaults,
        Event::Cycles,
        Event::Instructions,
        Event::Branches,
        Event::BranchMisses,
        Event::L1DcacheLoads,
        Event::L1DcacheLoadMisses,
        Event::LlcLoads,
        Event::LlcLoadMisses,
        Event::DtlbLoadMisses,
    ];

    /// The events `perf stat` counts when given no `-e`.
    pub const DEFAULT: [Event; 8] = [
        Event::TaskClock,
        Event::ContextSwitches,
        Event::CpuMigrations,
        Event::PageFaults,
        Event::Cycles,
        Event::Instructions,
        Event::Branches,
        Event::BranchMisses,
    ];

    /// The perf name, e.g. `L1-dcache-load-misses`.
    pub fn name(self) -> &'static str {
        match self {
            Event::TaskClock => "task-clock",
            Event::ContextSwitches => "context-switches",
            Event::CpuMigrations => "cpu-migrations",
            Event::PageFaults => "page-faults",
            Event::Cycles => "cycles",
            Event::Instructions => "instructions",
            Event::Branches => "branches",
            Event::BranchMisses => "branch-misses",
            Event::L1DcacheLoads => "L1-dcache-loads",
            Event::L1DcacheLoadMisses => "L1-dcache-load-misses",
            Event::LlcLoads => "LLC-loads",
            Event::LlcLoadMisses => "LLC-load-misses",
            Event::DtlbLoadMisses => "dTLB-load-misses",
        }
    }

    /// A snake_case key with the unit, for JSON and CSV (`task_clock_ns`, `instructions`).
    pub fn key(self) -> &'static str {
        match self {
            Event::TaskClock => "task_clock_ns",
            Event::ContextSwitches => "context_switches",
            Event::CpuMigrations => "cpu_migrations",
            Event::PageFaults => "page_faults",
            Event::Cycles => "cycles",
            Event::Instructions => "instructions",
            Event::Branches => "branches",
            Event::BranchMisses => "branch_misses",
            Event::L1DcacheLoads => "l1_dcache_loads",
            Event::L1DcacheLoadMisses => "l1_dcache_load_misses",
            Event::LlcLoads => "llc_loads",
            Event::LlcLoadMisses => "llc_load_misses",
            Event::DtlbLoadMisses => "dtlb_load_misses",
        }
    }

    /// The unit of the count: `"ns"` for `task-clock`, `""` (a plain count) for the others.
    pub fn unit(self) -> &'static str {
        match self {
            Event::TaskClock => "ns",
            _ => "",
        }
    }

    /// Software (kernel) or hardware (PMU) event.
    pub fn kind(self) -> EventKind {
        match self {
            Event::TaskClock
            | Event::ContextSwitches
            | Event::CpuMigrations
            | Event::PageFaults => EventKind::Software,
            _ => EventKind::Hardware,
        }
    }

    /// Parses a comma-separated list such as `cycles,instructions,task-clock`.
    ///
    /// Duplicates are dropped; order is kept.
    ///
    /// ```
    /// use frugal_counters::Event;
    /// let events = Event::parse_list("instructions, task-clock,instructions").unwrap();
    /// assert_eq!(events, vec![Event::Instructions, Event::TaskClock]);
    /// assert!(Event::parse_list("bogus").unwrap_err().to_string().contains("L1-dcache-loads"));
    /// ```
    pub fn parse_list(list: &str) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let event: Event = name.parse()?;
            if !events.contains(&event) {
                events.push(event);
            }
        }
        if events.is_empty() {
            return Err(Error::UnknownEvent {
                name: list.to_owned(),
                known: known_names(),
            });
        }
        Ok(events)
    }

    /// Applies this event to a perf-event2 builder.
    pub(crate) fn builder(self) -> perf_event::Builder<'static> {
        fn cache(which: CacheId, result: CacheResult) -> Cache {
            Cache {
                which,
                operation: CacheOp::READ,
                result,
            }
        }
        match self {
            Event::TaskClock => perf_event::Builder::new(Software::TASK_CLOCK),
            Event::ContextSwitches => perf_event::Builder::new(Software::CONTEXT_SWITCHES),
            Event::CpuMigrations => perf_event::Builder::new(Software::CPU_MIGRATIONS),
            Event::PageFaults => perf_event::Builder::new(Software::PAGE_FAULTS),
            Event::Cycles => perf_event::Builder::new(Hardware::CPU_CYCLES),
            Event::Instructions => perf_event::Builder::new(Hardware::INSTRUCTIONS),
            Event::Branches => perf_event::Builder::new(Hardware::BRANCH_INSTRUCTIONS),
            Event::BranchMisses => perf_event::Builder::new(Hardware::BRANCH_MISSES),
            Event::L1DcacheLoads => {
                perf_event::Builder::new(cache(CacheId::L1D, CacheResult::ACCESS))
            }
            Event::L1DcacheLoadMisses => {
                perf_event::Builder::new(cache(CacheId::L1D, CacheResult::MISS))
            }
            Event::LlcLoads => perf_event::Builder::new(cache(CacheId::LL, CacheResult::ACCESS)),
            Event::LlcLoadMisses => perf_event::Builder::new(cache(CacheId::LL, CacheResult::MISS)),
            Event::DtlbLoadMisses => {
                perf_event::Builder::new(cache(CacheId::DTLB, CacheResult::MISS))
            }
        }
    }
}

/// The known event names, comma-separated (for error messages).
pub(crate) fn known_names() -> String {
    Event::ALL
        .iter()
        .map(|e| e.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Event {
    type Err = Error;

    /// Accepts the perf name (`L1-dcache-load-misses`) or the JSON key (`l1_dcache_load_misses`),
    /// case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Event::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(wanted) || e.key().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| Error::UnknownEvent {
                name: wanted.to_owned(),
                known: known_names(),
            })
    }
}

impl From<Event> for String {
    fn from(e: Event) -> String {
        e.name().to_owned()
    }
}

impl TryFrom<String> for Event {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in Event::ALL {
            assert_eq!(e.name().parse::<Event>().unwrap(), e);
            assert_eq!(e.key().parse::<Event>().unwrap(), e);
        }
    }

    #[test]
    fn unknown_lists_known() {
        let msg = "cache-thrash".parse::<Event>().unwrap_err().to_string();
        assert!(msg.contains("cache-thrash"), "{msg}");
        for e in Event::ALL {
            assert!(msg.contains(e.name()), "{msg}");
        }
    }
}
