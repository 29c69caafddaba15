//! Opening events as perf groups and reading them, one `read()` per group.

use std::io;

use perf_event::{Builder, Counter, ReadFormat};

use crate::error::{is_permission, is_unsupported, paranoid_value};
use crate::{sys, Error, Event, EventKind};

/// At most this many hardware events share a group: a group is scheduled on the PMU all or
/// nothing, and common PMUs have 4 general-purpose counters. More events make more groups, which
/// the kernel multiplexes (see [`Value::running_pct`]).
const HARDWARE_GROUP_SIZE: usize = 4;

/// What a counter is doing: counting, not countable on this machine, or broken.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CounterStatus {
    /// The event is being counted.
    Counting {
        /// Whether kernel-mode activity is included.
        scope: Scope,
        /// Where the number comes from.
        source: Source,
    },
    /// This machine cannot count the event (`ENOENT`, `EOPNOTSUPP`, `ENODEV`): typically a VM
    /// without a virtual PMU. Not an error; use simulation (`--sim`) for hardware figures.
    Unsupported {
        /// The kernel's answer, e.g. `No such file or directory (os error 2)`.
        reason: String,
    },
    /// Opening the counter failed for another reason (e.g. permission).
    Failed {
        /// The error, saying what to do.
        message: String,
    },
}

impl CounterStatus {
    /// True when the event is being counted.
    pub fn is_counting(&self) -> bool {
        matches!(self, CounterStatus::Counting { .. })
    }
}

/// Which privilege levels a count includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// User and kernel mode (what `perf stat` counts as root).
    UserAndKernel,
    /// User mode only: `perf_event_paranoid` forbade kernel counting.
    UserOnly,
}

/// Where a count comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A `perf_event_open` counter.
    Perf,
    /// `getrusage` (voluntary + involuntary context switches): used for `context-switches` when
    /// the kernel must be excluded, because the kernel performs every switch and a user-only
    /// perf counter reads 0. In-process it is the calling thread's (`RUSAGE_THREAD`); for a
    /// command it is the difference of `RUSAGE_CHILDREN` around the run, which also includes any
    /// other child the process reaps meanwhile.
    Getrusage,
}

/// How counters attach to their target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The calling thread, enabled at once.
    ThisThread,
    /// Children spawned by the calling thread from now on: inherited, enabled at `exec`.
    ChildrenFromExec,
    /// Another thread (any process), enabled at once, inherited by the threads it creates.
    Task(u32),
}

/// One raw reading of one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct RawValue {
    /// The count (unscaled).
    pub count: u64,
    /// Nanoseconds the counter was enabled.
    pub time_enabled_ns: u64,
    /// Nanoseconds the counter was actually on the PMU (less than enabled when multiplexed).
    pub time_running_ns: u64,
}

/// A count over an interval, scaled for multiplexing.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Value {
    /// `raw * time_enabled / time_running`: the estimate of the full-interval count.
    pub count: f64,
    /// The unscaled count.
    pub raw: u64,
    /// Share of the enabled time the counter was actually counting, in percent.
    pub running_pct: f64,
}

impl Value {
    /// The difference `later - earlier`, scaled by the interval's enabled/running times.
    /// `None` when the counter never ran in the interval.
    pub fn between(earlier: RawValue, later: RawValue) -> Option<Value> {
        let raw = later.count.wrapping_sub(earlier.count);
        let enabled = later
            .time_enabled_ns
            .saturating_sub(earlier.time_enabled_ns);
        let running = later
            .time_running_ns
            .saturating_sub(earlier.time_running_ns);
        Value::scaled(raw, enabled, running)
    }

    /// Scales `raw` by `enabled / running`; `None` when `running` is 0.
    pub fn scaled(raw: u64, enabled: u64, running: u64) -> Option<Value> {
        if running == 0 {
            return None;
        }
        let enabled = enabled.max(running);
        Some(Value {
            count: raw as f64 * enabled as f64 / running as f64,
            raw,
            running_pct: 100.0 * running as f64 / enabled as f64,
        })
    }
}

/// A snapshot of every counter of a [`CounterSet`], in the order of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// One entry per event; `None` for events that are not counting.
    pub values: Vec<Option<RawValue>>,
}

impl Reading {
    /// Per-event scaled differences `self - earlier`.
    pub fn since(&self, earlier: &Reading) -> Vec<Option<Value>> {
        self.values
            .iter()
            .zip(&earlier.values)
            .map(|(later, earlier)| match (later, earlier) {
                (Some(l), Some(e)) => Value::between(*e, *l),
                _ => None,
            })
            .collect()
    }
}

/// Where each event's value lives.
#[derive(Debug)]
enum Slot {
    /// The counter with kernel id `id` in the perf group led by `groups[group]`.
    Perf { group: usize, id: u64 },
    /// Context switches from getrusage.
    Rusage,
    /// Not counting; see status.
    None,
}

/// A set of events opened as perf groups: task-clock alone, the other software events in one
/// group, hardware events in groups of at most four, so an unsupported PMU never takes the
/// software events down with it.
pub struct CounterSet {
    events: Vec<Event>,
    status: Vec<CounterStatus>,
    slots: Vec<Slot>,
    /// Group leaders, each read with one `read()`.
    groups: Vec<Counter>,
    /// The other group members (kept open: closing one removes it from its group).
    members: Vec<Counter>,
    mode: Mode,
}

impl CounterSet {
    /// Opens `events` on the calling thread and starts counting.
    ///
    /// Events the machine cannot count are [`CounterStatus::Unsupported`]; this fails only when
    /// perf events cannot be used at all (e.g. `perf_event_paranoid` is 3).
    pub fn open(events: &[Event]) -> Result<CounterSet, Error> {
        let mut set = CounterSet::open_mode(events, Mode::ThisThread)?;
        for (i, group) in set.groups.iter_mut().enumerate() {
            group.enable_group().map_err(|source| Error::Counter {
                event: format!("group {i}"),
                source,
            })?;
        }
        Ok(set)
    }

    /// Opens `events` on thread `tid` of any process (a process's main thread has its PID as
    /// `tid`) and starts counting; threads it creates from now on are counted too (inherit).
    /// Other threads of the process are not: open one set per thread of `/proc/PID/task`.
    /// Needs the permission to trace `tid` (root, or the same user and `perf_event_paranoid`
    /// allowing it).
    pub fn open_task(events: &[Event], tid: u32) -> Result<CounterSet, Error> {
        let mut set = CounterSet::open_mode(events, Mode::Task(tid))?;
        for (i, group) in set.groups.iter_mut().enumerate() {
            group.enable_group().map_err(|source| Error::Counter {
                event: format!("group {i}"),
                source,
            })?;
        }
        Ok(set)
    }

    pub(crate) fn open_mode(events: &[Event], mode: Mode) -> Result<CounterSet, Error> {
        let mut set = CounterSet {
            events: Vec::new(),
            status: Vec::new(),
            slots: Vec::new(),
            groups: Vec::new(),
            members: Vec::new(),
            mode,
        };
        let mut unique = Vec::new();
        for &e in events {
            if !unique.contains(&e) {
                unique.push(e);
            }
        }
        // task-clock gets a group of its own. It must lead its group: the kernel refreshes a
        // clock event on a group read only when it is the leader (siblings are brought up to
        // date at context switches). And it belongs to the kernel's clock PMU, not to the
        // software-event PMU of page-faults & co.: a software-event sibling of a task-clock
        // leader does not count until the thread next switches (seen on Linux 6.18, where
        // page faults of the first samples went missing), while in a group of its own PMU it
        // counts at once.
        let (clock, software): (Vec<Event>, Vec<Event>) = unique
            .iter()
            .copied()
            .filter(|e| e.kind() == EventKind::Software)
            .partition(|&e| e == Event::TaskClock);
        let hardware: Vec<Event> = unique
            .iter()
            .copied()
            .filter(|e| e.kind() == EventKind::Hardware)
            .collect();
        for &e in &unique {
            set.events.push(e);
            set.status.push(CounterStatus::Failed {
                message: "not opened".to_owned(),
            });
            set.slots.push(Slot::None);
        }
        let mut chunks: Vec<&[Event]> = Vec::new();
        for group in [&clock, &software] {
            if !group.is_empty() {
                chunks.push(group);
            }
        }
        chunks.extend(hardware.chunks(HARDWARE_GROUP_SIZE));
        for chunk in chunks {
            set.open_group(chunk)?;
        }
        Ok(set)
    }

    fn configure(&self, builder: &mut Builder<'_>, scope: Scope) {
        builder
            .exclude_kernel(scope == Scope::UserOnly)
            .exclude_hv(true)
            .enabled(false);
        match self.mode {
            Mode::ThisThread => {}
            Mode::ChildrenFromExec => {
                builder.inherit(true).enable_on_exec(true);
            }
            Mode::Task(tid) => {
                builder
                    .observe_pid(libc::pid_t::try_from(tid).unwrap_or(libc::pid_t::MAX))
                    .any_cpu()
                    .inherit(true);
            }
        }
    }

    /// Opens `events` as one group. The leader is the first event that opens, so an event the
    /// machine cannot count never takes the others down with it. (A dummy leader would not do:
    /// the kernel does not refresh software siblings such as task-clock on a group read.)
    fn open_group(&mut self, events: &[Event]) -> Result<(), Error> {
        let group_index = self.groups.len();
        let mut leader: Option<Counter> = None;
        for &event in events {
            let index = self.index_of(event);
            let mut attempt = |scope| {
                let mut b = event.builder();
                self.configure(&mut b, scope);
                b.read_format(
                    ReadFormat::GROUP
                        | ReadFormat::ID
                        | ReadFormat::TOTAL_TIME_ENABLED
                        | ReadFormat::TOTAL_TIME_RUNNING,
                );
                match leader.as_mut() {
                    None => b.build(),
                    Some(leader) => b.build_with_group(leader),
                }
                .map(|c| (c, scope))
            };
            let opened = match attempt(Scope::UserAndKernel) {
                Err(e) if is_permission(&e) => attempt(Scope::UserOnly),
                other => other,
            };
            match opened {
                Ok((_, Scope::UserOnly))
                    if event == Event::ContextSwitches && matches!(self.mode, Mode::Task(_)) =>
                {
                    // getrusage cannot count another process's threads.
                    self.status[index] = CounterStatus::Failed {
                        message: "context switches of another process need kernel counting: \
                                  run as root"
                            .to_owned(),
                    };
                }
                Ok((_, Scope::UserOnly)) if event == Event::ContextSwitches => {
                    // A user-only context-switch counter reads 0: every switch happens in the
                    // kernel. Count them with getrusage instead, and say so. (The counter just
                    // opened is dropped; it was not made a leader.)
                    self.slots[index] = Slot::Rusage;
                    self.status[index] = CounterStatus::Counting {
                        scope: Scope::UserAndKernel,
                        source: Source::Getrusage,
                    };
                }
                Ok((counter, scope)) => {
                    self.slots[index] = Slot::Perf {
                        group: group_index,
                        id: counter.id(),
                    };
                    self.status[index] = CounterStatus::Counting {
                        scope,
                        source: Source::Perf,
                    };
                    if leader.is_none() {
                        leader = Some(counter);
                    } else {
                        self.members.push(counter);
                    }
                }
                Err(e) if is_unsupported(&e) => {
                    self.status[index] = CounterStatus::Unsupported {
                        reason: e.to_string(),
                    };
                }
                Err(e) => {
                    self.status[index] = CounterStatus::Failed {
                        message: open_error(event.name(), e).to_string(),
                    };
                }
            }
        }
        if let Some(leader) = leader {
            self.groups.push(leader);
        }
        Ok(())
    }

    fn index_of(&self, event: Event) -> usize {
        self.events
            .iter()
            .position(|&e| e == event)
            .expect("every event of a group was pushed to `events` before the groups were opened")
    }

    /// The events, in the order readings report them.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The status of each event, in the order of [`events`](Self::events).
    pub fn status(&self) -> &[CounterStatus] {
        &self.status
    }

    /// Number of perf groups (each read with one `read()` syscall).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Reads every group (one `read()` each) and, if needed, `getrusage`.
    pub fn read(&mut self) -> Result<Reading, Error> {
        let mut values = vec![None; self.events.len()];
        self.read_into(&mut values)?;
        Ok(Reading { values })
    }

    /// Like [`read`](Self::read) into a caller-provided buffer (no allocation of our own).
    pub fn read_into(&mut self, values: &mut [Option<RawValue>]) -> Result<(), Error> {
        assert_eq!(
            values.len(),
            self.events.len(),
            "the buffer must have one entry per event"
        );
        for (g, group) in self.groups.iter_mut().enumerate() {
            let data = group.read_group().map_err(|source| Error::Counter {
                event: format!("group {g}"),
                source,
            })?;
            let enabled = data.time_enabled().map_or(0, |d| d.as_nanos() as u64);
            let running = data.time_running().map_or(0, |d| d.as_nanos() as u64);
            for (slot, value) in self.slots.iter().zip(values.iter_mut()) {
                if let Slot::Perf { group, id } = slot {
                    if *group == g {
                        *value = data.iter().find(|e| e.id() == *id).map(|entry| RawValue {
                            count: entry.value(),
                            time_enabled_ns: enabled,
                            time_running_ns: running,
                        });
                    }
                }
            }
        }
        for (slot, value) in self.slots.iter().zip(values.iter_mut()) {
            if let Slot::Rusage = slot {
                let switches = match self.mode {
                    Mode::ThisThread => sys::thread_context_switches(),
                    Mode::ChildrenFromExec => sys::children_context_switches(),
                    Mode::Task(_) => unreachable!("a task's context switches never use getrusage"),
                }
                .map_err(|source| Error::Io {
                    context: "getrusage".to_owned(),
                    source,
                })?;
                // getrusage is exact and always "running": enabled = running = a monotonic clock,
                // so scaling is 1 and the interval is never empty.
                let now = monotonic_ns();
                *value = Some(RawValue {
                    count: switches,
                    time_enabled_ns: now,
                    time_running_ns: now,
                });
            }
        }
        Ok(())
    }
}

/// Nanoseconds since the first call (a monotonic clock), at least 1.
fn monotonic_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    epoch.elapsed().as_nanos() as u64 + 1
}

impl std::fmt::Debug for CounterSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterSet")
            .field("events", &self.events)
            .field("status", &self.status)
            .field("groups", &self.groups.len())
            .field("mode", &self.mode)
            .finish()
    }
}

fn open_error(event: &str, source: io::Error) -> Error {
    if is_permission(&source) {
        Error::Permission {
            event: event.to_owned(),
            paranoid: paranoid_value(),
            source,
        }
    } else {
        Error::Counter {
            event: event.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplexed_counts_are_scaled() {
        let v = Value::scaled(100, 200, 50).unwrap();
        assert_eq!((v.count, v.raw, v.running_pct), (400.0, 100, 25.0));
        assert!(
            Value::scaled(100, 200, 0).is_none(),
            "never ran: no value, not zero"
        );
        let earlier = RawValue {
            count: 10,
            time_enabled_ns: 100,
            time_running_ns: 100,
        };
        let later = RawValue {
            count: 60,
            time_enabled_ns: 300,
            time_running_ns: 200,
        };
        let v = Value::between(earlier, later).unwrap();
        assert_eq!((v.count, v.running_pct), (100.0, 50.0));
    }
}
