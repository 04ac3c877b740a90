//! The coordination record all replicas share, and the pure rules that
//! change it: who is alive, who owns which shard, and how a heartbeat moves
//! shards between replicas. No I/O here, so the rules are property-tested
//! over arbitrary tables and event orders.
//!
//! Jobs are grouped into [`SHARDS`] shards by a hash of their id; a shard is
//! the unit of ownership. The whole table is one KV v2 record, written with
//! check-and-set: one read and one write per replica per heartbeat renews
//! every shard that replica owns, whatever the number of jobs.
//!
//! Liveness is judged by each replica's own monotonic clock, never by the
//! writer's wall clock (clocks of two machines disagree): a member whose
//! `beat` counter has not moved for a lease TTL, as observed locally, is
//! dead. The owner stops acting a margin before that (see [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Shards of jobs. Enough to spread evenly over a handful of replicas; few
/// enough that the table stays a small record.
pub const SHARDS: u16 = 64;

/// The shard of a job: fixed for its id, the same on every replica.
pub fn shard_of(job: &str) -> u16 {
    let digest = Sha256::digest(job.as_bytes());
    // The last bytes: the first ones place the job in its interval
    // (`Schedule::spread_for`), and the two should not correlate.
    let tail = u64::from_be_bytes(digest[24..32].try_into().expect("8 bytes"));
    (tail % u64::from(SHARDS)) as u16
}

/// The record at `<state mount>/<state prefix>/_replicas`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Live (or not yet judged dead) replicas, by id.
    #[serde(default)]
    pub members: BTreeMap<String, Member>,
    /// Each shard's owner and the epoch it was claimed under; index = shard.
    #[serde(default)]
    pub shards: Vec<Shard>,
    /// The last epoch handed out. Every claim takes the next, so epochs only
    /// grow, across all shards, for the life of the record.
    #[serde(default)]
    pub epoch: u64,
    /// Moved on whenever a job is added to or removed from the kept API
    /// jobs, so every replica reloads them.
    #[serde(default)]
    pub jobs_generation: u64,
}

/// One replica as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Moved on by every heartbeat: what the others watch.
    pub beat: u64,
    /// The writer's clock at its last heartbeat: shown to operators, never
    /// used to judge liveness.
    #[serde(with = "time::serde::rfc3339")]
    pub seen: OffsetDateTime,
    /// Where its operator API listens, so others can point callers there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Shards it took over from dead replicas, ever.
    #[serde(default)]
    pub takeovers: u64,
}

/// One shard's owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub epoch: u64,
}

impl Table {
    /// The shard's owner, if any.
    pub fn owner(&self, shard: u16) -> Option<&str> {
        self.shards.get(usize::from(shard))?.owner.as_deref()
    }

    /// The shards `replica` owns, with their epochs.
    pub fn owned_by(&self, replica: &str) -> BTreeMap<u16, u64> {
        let mine = |(i, s): (usize, &Shard)| (s.owner.as_deref() == Some(replica)).then_some((i as u16, s.epoch));
        self.shards.iter().enumerate().filter_map(mine).collect()
    }

    /// How many shards each member should hold: an even split, the first
    /// members (by id) taking one more when it does not divide.
    pub fn fair_share(&self, replica: &str) -> usize {
        let n = self.members.len().max(1);
        let index = self.members.keys().position(|m| m == replica).unwrap_or(n);
        usize::from(SHARDS) / n + usize::from(index < usize::from(SHARDS) % n)
    }
}

/// What this replica last saw of each other member's beat, and since when
/// (by its own clock).
#[derive(Debug, Default)]
pub struct Observed {
    beats: HashMap<String, (u64, Instant)>,
}

impl Observed {
    /// Note `table`'s beats as read at `now`; returns the members whose beat
    /// has not moved for `ttl` (never `me`).
    pub fn dead(&mut self, table: &Table, me: &str, now: Instant, ttl: Duration) -> Vec<String> {
        self.beats.retain(|id, _| table.members.contains_key(id));
        let mut dead = Vec::new();
        for (id, m) in &table.members {
            if id == me {
                continue;
            }
            let seen = self.beats.entry(id.clone()).or_insert((m.beat, now));
            if seen.0 != m.beat {
                *seen = (m.beat, now);
            } else if now.saturating_duration_since(seen.1) >= ttl {
                dead.push(id.clone());
            }
        }
        dead
    }

    /// Start every clock again: after a read failed, this replica cannot
    /// tell a dead member from an unreachable Vault (an outage stalls every
    /// beat at once), so nobody is judged on the gap.
    pub fn forget(&mut self) {
        self.beats.clear();
    }
}

/// A heartbeat's change to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The table to write.
    pub table: Table,
    /// Shards claimed in this write, with their new epochs.
    pub gained: Vec<(u16, u64)>,
    /// Shards given up in this write (this replica holds more than its share).
    pub released: Vec<u16>,
    /// Members removed as dead.
    pub removed: Vec<String>,
    /// How many of the gained shards had belonged to a dead member.
    pub taken_over: u64,
}

/// `me`'s heartbeat on `read`: remove `dead` members and free their shards,
/// move my beat on, give up shards beyond my fair share (those `busy` says
/// are running a rotation last) and claim free shards up to it.
pub fn plan(read: &Table, me: &str, api: Option<&str>, dead: &[String], busy: impl Fn(u16) -> bool) -> Plan {
    let mut t = read.clone();
    if t.shards.len() != usize::from(SHARDS) {
        // A record from another shard count: start the split over (epochs
        // keep growing, so fencing still holds).
        t.shards = vec![Shard::default(); usize::from(SHARDS)];
    }
    let removed: Vec<String> = dead.iter().filter(|d| *d != me && t.members.remove(*d).is_some()).cloned().collect();
    let mut orphaned = vec![false; t.shards.len()];
    for (i, s) in t.shards.iter_mut().enumerate() {
        if s.owner.as_ref().is_some_and(|o| o != me && !t.members.contains_key(o)) {
            s.owner = None;
            orphaned[i] = true;
        }
    }
    let member = t.members.entry(me.to_owned()).or_insert(Member {
        beat: 0,
        seen: OffsetDateTime::UNIX_EPOCH,
        api: None,
        takeovers: 0,
    });
    member.beat = member.beat.wrapping_add(1);
    member.seen = OffsetDateTime::now_utc();
    member.api = api.map(str::to_owned);

    let share = t.fair_share(me);
    let mut mine: Vec<u16> = t.owned_by(me).into_keys().collect();
    let mut released = Vec::new();
    if mine.len() > share {
        // Idle shards go first, the highest numbers first.
        mine.sort_by_key(|s| (busy(*s), std::cmp::Reverse(*s)));
        let surplus = mine.len() - share;
        for s in mine.into_iter().take(surplus) {
            t.shards[usize::from(s)].owner = None;
            released.push(s);
        }
    }
    let mut gained = Vec::new();
    let mut taken_over = 0;
    let want = share.saturating_sub(t.owned_by(me).len());
    let free: Vec<usize> = (0..t.shards.len()).filter(|i| t.shards[*i].owner.is_none()).collect();
    for i in free.into_iter().filter(|i| !released.contains(&(*i as u16))).take(want) {
        t.epoch += 1;
        t.shards[i] = Shard { owner: Some(me.to_owned()), epoch: t.epoch };
        gained.push((i as u16, t.epoch));
        taken_over += u64::from(orphaned[i]);
    }
    if let Some(m) = t.members.get_mut(me) {
        m.takeovers += taken_over;
    }
    Plan { table: t, gained, released, removed, taken_over }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
