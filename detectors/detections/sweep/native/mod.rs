//! `ipv6.sweep`'s native reducer: the per-packet counting of the sweep family.
//!
//! Owns the `sweep` reducer kind (declared in `../spec.yaml` under `reducers:`): every
//! decoded IPv6 packet, native or tunnelled, is counted here per source /64, per
//! (source /64, destination /64) and per destination /64 (fan-in) window (`core`), with
//! exact-then-HyperLogLog distinct counters; answers only as responders of open windows. Python (`../sweep.py`) gets only the outcomes (`py`): a tier or wide-scan
//! crossing that passed the no-reply gate, and closed windows worth an observation.
//! The counting reads the decoder's own `Ipv6Packet`; a window keeps its first one.

mod core;
mod py;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::decode::events::Event;
use crate::reduce::py::setting;
use crate::reducer::{Builder, Observes, Outputs, Reducer, TableStat};

use self::core::{Config, Outcome, SweepCore, TABLE_NAMES};

/// The reducer kinds this family provides (found by `native/build.rs`).
pub const REDUCERS: &[(&str, Builder)] = &[("sweep", build)];

/// The `sweep` reducer: `SweepCore` behind the `Reducer` contract.
struct Sweep {
    core: SweepCore,
    out: Vec<Outcome>,
    names: [String; 3],
}

/// Settings (from `../sweep.py`): the resolved `ipv6.sweep` thresholds it counts with.
fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let precision: u32 = setting(settings, "sweep", "precision")?;
    let src_precision: u32 = setting(settings, "sweep", "src_precision")?;
    for p in [precision, src_precision] {
        if !(4..=18).contains(&p) {
            return Err(PyValueError::new_err(format!(
                "HyperLogLog precision must be 4..18, got {p}"
            )));
        }
    }
    let exact_up_to: usize = setting(settings, "sweep", "exact_up_to")?;
    let max_sources: usize = setting(settings, "sweep", "max_sources")?;
    let max_pairs: usize = setting(settings, "sweep", "max_pairs")?;
    let max_fanin: usize = setting(settings, "sweep", "max_fanin")?;
    let window_ns: i64 = setting(settings, "sweep", "window_ns")?;
    if exact_up_to < 1 || max_sources < 1 || max_pairs < 1 || max_fanin < 1 || window_ns < 1 {
        return Err(PyValueError::new_err(
            "exact_up_to, table caps and the window must be at least 1",
        ));
    }
    // Table slots are u32 indices.
    if [max_sources, max_pairs, max_fanin]
        .iter()
        .any(|&c| c >= u32::MAX as usize)
    {
        return Err(PyValueError::new_err("table cap too large"));
    }
    let tiers: (f64, f64, f64) = setting(settings, "sweep", "tiers")?;
    Ok(Box::new(Sweep {
        core: SweepCore::new(Config {
            window_ns,
            tiers: [tiers.0, tiers.1, tiers.2],
            wide_prefixes: setting(settings, "sweep", "wide_prefixes")?,
            wide_targets: setting(settings, "sweep", "wide_targets")?,
            min_no_reply: setting(settings, "sweep", "min_no_reply")?,
            exact_up_to,
            precision,
            src_precision,
            max_sources,
            max_pairs,
            observe_min: setting(settings, "sweep", "observe_min")?,
            fanin_sources: setting(settings, "sweep", "fanin_sources")?,
            max_fanin,
            thrash_ratio: setting(settings, "sweep", "thrash_ratio")?,
        }),
        out: Vec::new(),
        names: TABLE_NAMES.map(str::to_string),
    }))
}

impl Sweep {
    fn hand_over<'py>(&mut self, py: Python<'py>, out: &mut Outputs<'py>) -> PyResult<()> {
        for o in self.out.drain(..) {
            out.push(py::outcome(py, &o)?)?;
        }
        Ok(())
    }
}

impl Reducer for Sweep {
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
                // A tier or a wide scan is crossed by this packet: the alert names it.
                for o in &mut self.out {
                    match o {
                        Outcome::Tier { win, .. } | Outcome::Wide { win, .. } => {
                            win.crossing = Some(p.clone());
                        }
                        Outcome::FanIn { win, .. } => win.crossing = Some(p.clone()),
                        _ => {}
                    }
                }
                self.hand_over(py, out)?;
            }
        }
        Ok(())
    }

    fn tick<'py>(&mut self, py: Python<'py>, now_ns: i64, out: &mut Outputs<'py>) -> PyResult<()> {
        self.core.tick(now_ns, &mut self.out);
        self.hand_over(py, out)
    }

    fn flush<'py>(
        &mut self,
        py: Python<'py>,
        _now_ns: i64,
        out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        self.core.flush(&mut self.out);
        self.hand_over(py, out)
    }

    fn tables(&self) -> Vec<TableStat> {
        self.core
            .table_stats()
            .iter()
            .zip(&self.names)
            .map(|(t, n)| (n.clone(), t.0, t.1, t.2))
            .collect()
    }
}
