//! Which part of the load each worker runs: `[distribution]` strategy and
//! zones turned into load slices that tile `[0, 1)`.
//!
//! Zones come first, in the scenario's order, each a range as wide as its
//! percentage; a zone's range is split among the workers labelled
//! `zone=NAME`, equally (`even`) or by `--capacity` (`capacity`). Without
//! zones every worker shares the whole range. Pure arithmetic: the
//! coordinator calls it at the start and again, over the survivors, when
//! it rebalances after losing a worker.

use std::collections::BTreeMap;

use crate::plan::{DistributionPlan, Strategy};
use crate::runner::Slice;

/// The worker label a zone is matched on.
pub const ZONE_LABEL: &str = "zone";

/// A worker as splitting sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub capacity: u32,
}

/// When a zone has no worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyZones {
    /// Refuse: the scenario asked for load from there (at the start).
    Refuse,
    /// Share its load among the zones that still have workers (after
    /// losing a zone's last worker).
    Spread,
}

/// Each worker's slice, in the order given; `None` for a worker outside
/// every zone. Slices that are `Some` tile `[0, 1)` exactly.
pub fn split(
    workers: &[Candidate],
    plan: &DistributionPlan,
    empty: EmptyZones,
) -> Result<Vec<Option<Slice>>, String> {
    if workers.is_empty() {
        return Err("there is no worker to run the load".to_string());
    }
    let mut groups: Vec<(f64, Vec<usize>)> = if plan.zones.is_empty() {
        vec![(1.0, (0..workers.len()).collect())]
    } else {
        let mut groups = Vec::new();
        for zone in &plan.zones {
            let members: Vec<usize> = (0..workers.len())
                .filter(|&i| workers[i].labels.get(ZONE_LABEL) == Some(&zone.name))
                .collect();
            if members.is_empty() && empty == EmptyZones::Refuse {
                return Err(format!(
                    "zone `{}` ({}% of the load) has no worker: start one with `--labels {ZONE_LABEL}={}`",
                    zone.name,
                    crate::units::trim_float(zone.percent, 2),
                    zone.name
                ));
            }
            groups.push((zone.percent, members));
        }
        groups
    };
    groups.retain(|(_, members)| !members.is_empty());
    if groups.is_empty() {
        return Err("no worker is in any of the scenario's zones".to_string());
    }
    let weight = |i: usize| match plan.strategy {
        Strategy::Even => 1.0,
        Strategy::Capacity => f64::from(workers[i].capacity.max(1)),
    };
    let total: f64 = groups.iter().map(|(percent, _)| percent).sum();
    let mut slices = vec![None; workers.len()];
    let (mut done, mut from) = (0.0, 0.0);
    let last_group = groups.len() - 1;
    for (g, (percent, members)) in groups.iter().enumerate() {
        let group_weight: f64 = members.iter().map(|&i| weight(i)).sum();
        let mut in_group = 0.0;
        for (m, &i) in members.iter().enumerate() {
            in_group += weight(i);
            // The very last slice ends at 1 exactly, whatever the rounding.
            let to = if g == last_group && m == members.len() - 1 {
                1.0
            } else {
                ((done + percent * in_group / group_weight) / total).min(1.0)
            };
            slices[i] = Some(Slice::new(from, to.max(from))?);
            from = to.max(from);
        }
        done += percent;
    }
    Ok(slices)
}

/// Moves the cuts between slices so each holds its share of the first
/// `users` users exactly (rounded): see [`crate::runner::share::cuts_for_users`].
/// For the closed model, whose users are few enough for it to matter.
pub fn place_users(slices: &mut [Option<Slice>], users: u64) {
    let mut cuts: Vec<f64> = slices
        .iter()
        .flatten()
        .map(|s| s.to)
        .filter(|&to| to < 1.0)
        .collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let moved = crate::runner::share::cuts_for_users(&cuts, users);
    let to_moved = |x: f64| match cuts.binary_search_by(|c| c.total_cmp(&x)) {
        Ok(i) => moved[i],
        Err(_) => x,
    };
    for slice in slices.iter_mut().flatten() {
        let (from, to) = (to_moved(slice.from), to_moved(slice.to));
        if let Ok(moved) = Slice::new(from, to.max(from)) {
            *slice = moved;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{OnWorkerLost, Zone};

    fn labels(zone: Option<&str>) -> BTreeMap<String, String> {
        zone.map(|z| (ZONE_LABEL.to_string(), z.to_string()))
            .into_iter()
            .collect()
    }

    fn widths(slices: &[Option<Slice>]) -> Vec<f64> {
        slices
            .iter()
            .map(|s| s.map_or(-1.0, |s| (s.fraction() * 1000.0).round() / 1000.0))
            .collect()
    }

    fn tiles(slices: &[Option<Slice>]) {
        let mut parts: Vec<Slice> = slices.iter().flatten().copied().collect();
        parts.sort_by(|a, b| a.from.total_cmp(&b.from));
        assert_eq!(parts.first().unwrap().from, 0.0);
        assert_eq!(parts.last().unwrap().to, 1.0);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].to, pair[1].from, "{parts:?}");
        }
    }

    fn plan(strategy: Strategy, zones: &[(&str, f64)]) -> DistributionPlan {
        DistributionPlan {
            strategy,
            zones: zones
                .iter()
                .map(|(name, percent)| Zone {
                    name: name.to_string(),
                    percent: *percent,
                })
                .collect(),
            on_worker_lost: OnWorkerLost::Rebalance,
        }
    }

    #[test]
    fn even_and_capacity() {
        let none = labels(None);
        let workers: Vec<Candidate> = [1, 1, 2]
            .iter()
            .map(|&capacity| Candidate {
                labels: &none,
                capacity,
            })
            .collect();
        let even = split(&workers, &plan(Strategy::Even, &[]), EmptyZones::Refuse).unwrap();
        assert_eq!(widths(&even), vec![0.333, 0.333, 0.333]);
        tiles(&even);
        let by_capacity =
            split(&workers, &plan(Strategy::Capacity, &[]), EmptyZones::Refuse).unwrap();
        assert_eq!(widths(&by_capacity), vec![0.25, 0.25, 0.5]);
        tiles(&by_capacity);
    }

    #[test]
    fn zones_take_their_percentage_and_outsiders_get_none() {
        let (eu, us, other) = (labels(Some("eu")), labels(Some("us")), labels(None));
        let workers = [
            Candidate {
                labels: &us,
                capacity: 1,
            },
            Candidate {
                labels: &eu,
                capacity: 1,
            },
            Candidate {
                labels: &other,
                capacity: 1,
            },
            Candidate {
                labels: &eu,
                capacity: 1,
            },
        ];
        let zones = plan(Strategy::Even, &[("eu", 60.0), ("us", 40.0)]);
        let slices = split(&workers, &zones, EmptyZones::Refuse).unwrap();
        assert_eq!(widths(&slices), vec![0.4, 0.3, -1.0, 0.3]);
        tiles(&slices);
    }

    #[test]
    fn three_users_over_three_workers_are_one_each() {
        let none = labels(None);
        let workers = [Candidate {
            labels: &none,
            capacity: 1,
        }; 3];
        let mut slices = split(&workers, &plan(Strategy::Even, &[]), EmptyZones::Refuse).unwrap();
        place_users(&mut slices, 3);
        tiles(&slices);
        for slice in slices.iter().flatten() {
            assert_eq!(
                (0..3).filter(|&n| slice.contains(n)).count(),
                1,
                "{slices:?}"
            );
        }
    }

    #[test]
    fn an_empty_zone_is_refused_at_the_start_and_spread_after_a_loss() {
        let eu = labels(Some("eu"));
        let workers = [Candidate {
            labels: &eu,
            capacity: 1,
        }];
        let zones = plan(Strategy::Even, &[("eu", 60.0), ("us", 40.0)]);
        let refused = split(&workers, &zones, EmptyZones::Refuse).unwrap_err();
        assert!(
            refused.contains("zone `us` (40% of the load) has no worker"),
            "{refused}"
        );
        let spread = split(&workers, &zones, EmptyZones::Spread).unwrap();
        assert_eq!(widths(&spread), vec![1.0]);
        assert!(split(&[], &zones, EmptyZones::Spread).is_err());
    }
}
