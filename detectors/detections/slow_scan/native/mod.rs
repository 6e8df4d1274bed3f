//! `ipv6.slow_scan`'s native reducer: low-and-slow scans counted over hours.
//!
//! Owns the `slow_scan` reducer kind (declared in `../spec.yaml` under `reducers:`): every
//! decoded IPv6 packet, native or tunnelled, goes through `core` (bucketed HyperLogLog per
//! source /64 and per destination /64 on a sliding horizon). Python (`../__init__.py`)
//! gets only the keys that passed every gate, once per key and suppression interval, as
//! plain tuples; it writes the evidence and the alert.

mod core;

use std::hash::BuildHasher;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::decode::events::Event;
use crate::decode::topy::Converter;
use crate::reduce::py::{any, bytes, setting, tuple};
use crate::reduce::windows::KeyedState;
use crate::reducer::{Builder, Observes, Outputs, Reducer, TableStat};

use self::core::{ChurnReport, Config, Outcome, SlowCore, MAX_BUCKETS};

/// The reducer kinds this family provides (found by `native/build.rs`).
pub const REDUCERS: &[(&str, Builder)] = &[("slow_scan", build)];

struct Slow {
    core: SlowCore,
    out: Vec<Outcome>,
}

/// Settings (from `../__init__.py`): the resolved `ipv6.slow_scan` thresholds and the
/// `ipv6.sweep` ones its not-a-sweep rule follows.
fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let bucket_ns: i64 = setting(settings, "slow_scan", "bucket_ns")?;
    let horizon_ns: i64 = setting(settings, "slow_scan", "horizon_ns")?;
    let precision: u32 = setting(settings, "slow_scan", "precision")?;
    if bucket_ns < 1 || horizon_ns < bucket_ns {
        return Err(PyValueError::new_err(
            "slow_scan: the bucket must be at least 1 ns and the horizon at least one bucket",
        ));
    }
    let buckets = (horizon_ns as u64).div_ceil(bucket_ns as u64) as usize;
    if buckets > MAX_BUCKETS {
        return Err(PyValueError::new_err(format!(
            "slow_scan: horizon_s / bucket_s is {buckets}, at most {MAX_BUCKETS} buckets"
        )));
    }
    if !(4..=12).contains(&precision) {
        return Err(PyValueError::new_err(format!(
            "slow_scan: sketch precision must be 4..12, got {precision}"
        )));
    }
    let max_sources: usize = setting(settings, "slow_scan", "max_sources")?;
    let max_destinations: usize = setting(settings, "slow_scan", "max_destinations")?;
    if max_sources < 1 || max_destinations < 1 {
        return Err(PyValueError::new_err(
            "slow_scan: table caps must be at least 1",
        ));
    }
    let cfg = Config {
        bucket_ns,
        buckets,
        precision,
        min_targets: setting(settings, "slow_scan", "min_targets")?,
        min_no_reply: setting(settings, "slow_scan", "min_no_reply")?,
        min_source_prefixes: setting(settings, "slow_scan", "min_source_prefixes")?,
        max_probe_rate: setting(settings, "slow_scan", "max_probe_rate")?,
        suppress_ns: setting(settings, "slow_scan", "suppress_ns")?,
        max_sources,
        max_destinations,
        churn_ratio: setting(settings, "slow_scan", "churn_ratio")?,
        sweep_window_ns: setting(settings, "slow_scan", "sweep_window_ns")?,
        sweep_medium: setting(settings, "slow_scan", "sweep_medium")?,
        wide_targets: setting(settings, "slow_scan", "wide_targets")?,
        wide_prefixes: setting(settings, "slow_scan", "wide_prefixes")?,
    };
    Ok(Box::new(Slow {
        core: SlowCore::new(cfg, KeyedState::new().hash_one(0x510u64)),
        out: Vec::new(),
    }))
}

/// `(kind, prefix, targets, responders, ratio, source_prefixes, first_ns, last_ns, probes,
/// histogram, peak_window, recent, bytes_per_key, packet)`, kind "source" or
/// "destination", `recent` the last peers (targets of a source, sources of a
/// destination) as bytes, `packet` the probe that crossed as a `detectors.events`
/// `Ipv6Packet`.
fn outcome<'py>(py: Python<'py>, o: &Outcome) -> PyResult<Bound<'py, PyAny>> {
    let recent = o.recent.iter().map(|a| bytes(py, a)).collect::<Vec<_>>();
    tuple(
        py,
        vec![
            any(py, if o.source { "source" } else { "destination" })?,
            bytes(py, &o.prefix),
            any(py, o.targets)?,
            any(py, o.responders)?,
            any(py, o.ratio)?,
            any(py, o.source_prefixes)?,
            any(py, o.first_ns)?,
            any(py, o.last_ns)?,
            any(py, o.probes)?,
            PyList::new(py, &o.histogram)?.into_any(),
            any(py, o.peak_window)?,
            PyList::new(py, recent)?.into_any(),
            any(py, o.bytes_per_key)?,
            Converter::new(py)?.event(&Event::Packet(o.packet.clone()))?,
        ],
    )
}

/// `("churn", table, start_ns, ts_ns, evicted, rejected, max_evicted, size, cap,
/// total_evictions, total_rejected, max_rejected)`: one table's admissions in one bucket
/// that cost a resident key (`evicted`, the most targets one held `max_evicted`) or a
/// newcomer its probation way (`rejected`, the most targets one had shown
/// `max_rejected`).
fn churn<'py>(py: Python<'py>, c: &ChurnReport) -> PyResult<Bound<'py, PyAny>> {
    let table = if c.source {
        "slow_scan.sources"
    } else {
        "slow_scan.destinations"
    };
    tuple(
        py,
        vec![
            any(py, "churn")?,
            any(py, table)?,
            any(py, c.start_ns)?,
            any(py, c.ts_ns)?,
            any(py, c.evicted)?,
            any(py, c.rejected)?,
            any(py, c.max_evicted)?,
            any(py, c.len)?,
            any(py, c.cap)?,
            any(py, c.total_evictions)?,
            any(py, c.total_rejected)?,
            any(py, c.max_rejected)?,
        ],
    )
}

impl Reducer for Slow {
    fn observes(&self) -> Observes {
        Observes {
            packets: true,
            ..Observes::default()
        }
    }

    #[inline]
    fn observe<'py>(
        &mut self,
        py: Python<'py>,
        ev: &Event,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        if let Event::Packet(p) = ev {
            self.core.on_packet(p, &mut self.out);
            if !self.out.is_empty() {
                for o in self.out.drain(..) {
                    out.push(outcome(py, &o)?)?;
                }
            }
            if !self.core.churn.is_empty() {
                for c in self.core.churn.drain(..) {
                    out.push(churn(py, &c)?)?;
                }
            }
        }
        Ok(())
    }

    // Alerts are raised at the crossing; nothing closes on packet time.
    fn tick<'py>(&mut self, _: Python<'py>, _: i64, _: &mut Outputs<'py>) -> PyResult<()> {
        Ok(())
    }

    fn flush<'py>(&mut self, _: Python<'py>, _: i64, _: &mut Outputs<'py>) -> PyResult<()> {
        Ok(())
    }

    fn tables(&self) -> Vec<TableStat> {
        let [s, d] = self.core.table_stats();
        vec![
            ("slow_scan.sources".to_string(), s.0, s.1, s.2),
            ("slow_scan.destinations".to_string(), d.0, d.1, d.2),
        ]
    }
}
