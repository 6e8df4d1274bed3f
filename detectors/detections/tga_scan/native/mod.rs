//! `ipv6.tga_scan`'s native reducer: target-generation scans counted per packet.
//!
//! Owns the `tga_scan` reducer kind (declared in `../spec.yaml` under `reducers:`):
//! probes (ICMPv6 echo requests, TCP SYN, FIN, NULL and Xmas segments, UDP datagrams to
//! a service port: `probe::udp_role`) are counted per (source /64, destination /48) window in `core`,
//! replies from the /48 to the source /64 are the no-reply ratio. Python
//! (`../__init__.py`) gets one tuple per window that passed the gate and one per span in
//! which the full table refused or evicted too many keys (`outcome`).

mod core;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::decode::events::Event;
use crate::decode::topy::Converter;
use crate::reduce::probe::PROBE_NAMES;
use crate::reduce::py::{any, bytes, setting, tuple};
use crate::reducer::{Builder, Observes, Outputs, Reducer, TableStat};

use self::core::{Config, Crossing, Outcome, TgaCore};

/// The reducer kinds this family provides (found by `native/build.rs`).
pub const REDUCERS: &[(&str, Builder)] = &[("tga_scan", build)];

struct TgaScan {
    core: TgaCore,
    out: Vec<Outcome>,
    name: String,
    doorkeeper_name: String,
}

/// Settings (from `../__init__.py`): the resolved `ipv6.tga_scan` thresholds.
fn build(settings: &Bound<'_, PyAny>) -> PyResult<Box<dyn Reducer>> {
    let precision: u32 = setting(settings, "tga_scan", "precision")?;
    if !(4..=18).contains(&precision) {
        return Err(PyValueError::new_err(format!(
            "HyperLogLog precision must be 4..18, got {precision}"
        )));
    }
    let exact_up_to: usize = setting(settings, "tga_scan", "exact_up_to")?;
    let max_tracked: usize = setting(settings, "tga_scan", "max_tracked")?;
    let window_ns: i64 = setting(settings, "tga_scan", "window_ns")?;
    if exact_up_to < 1 || max_tracked < 1 || window_ns < 1 || max_tracked >= u32::MAX as usize {
        return Err(PyValueError::new_err(
            "exact_up_to, the table cap and the window must be at least 1 (cap below 2**32)",
        ));
    }
    Ok(Box::new(TgaScan {
        core: TgaCore::new(Config {
            window_ns,
            min_targets: setting(settings, "tga_scan", "min_targets")?,
            min_prefixes: setting(settings, "tga_scan", "min_prefixes")?,
            min_density: setting(settings, "tga_scan", "min_density")?,
            min_no_reply: setting(settings, "tga_scan", "min_no_reply")?,
            exact_up_to,
            precision,
            max_tracked,
            thrash_ratio: setting(settings, "tga_scan", "thrash_ratio")?,
        }),
        out: Vec::new(),
        name: "tga_scan.windows".to_string(),
        doorkeeper_name: "tga_scan.doorkeeper".to_string(),
    }))
}

/// `("crossing", src64, dst48, targets, prefixes, exact, ratio, responders, start_ns,
/// last_ns, packets, probes, sample, sample_level, first, crossing)`; `probes` is `[(kind,
/// packets)]` for the kinds seen, `first` and `crossing` `detectors.events.Ipv6Packet`s.
/// Or `("thrash", refused, evictions, cap, start_ns, ts_ns, refused_total,
/// evictions_total, threshold)`.
fn outcome<'py>(py: Python<'py>, o: &Outcome) -> PyResult<Bound<'py, PyAny>> {
    match o {
        Outcome::Crossing(c) => crossing(py, c),
        Outcome::Thrash {
            refused,
            evictions,
            cap,
            start_ns,
            ts_ns,
            refused_total,
            evictions_total,
            threshold,
        } => tuple(
            py,
            vec![
                any(py, "thrash")?,
                any(py, *refused)?,
                any(py, *evictions)?,
                any(py, *cap)?,
                any(py, *start_ns)?,
                any(py, *ts_ns)?,
                any(py, *refused_total)?,
                any(py, *evictions_total)?,
                any(py, *threshold)?,
            ],
        ),
    }
}

fn crossing<'py>(py: Python<'py>, o: &Crossing) -> PyResult<Bound<'py, PyAny>> {
    let mut conv = Converter::new(py)?;
    let mut probes = Vec::new();
    for (kind, &n) in o.probes.iter().enumerate() {
        if n > 0 {
            probes.push(tuple(py, vec![any(py, PROBE_NAMES[kind])?, any(py, n)?])?);
        }
    }
    let sample = o.sample.iter().map(|a| bytes(py, a)).collect::<Vec<_>>();
    tuple(
        py,
        vec![
            any(py, "crossing")?,
            bytes(py, &o.src64),
            bytes(py, &o.dst48),
            any(py, o.targets)?,
            any(py, o.prefixes)?,
            any(py, o.exact)?,
            any(py, o.ratio)?,
            any(py, o.responders)?,
            any(py, o.start_ns)?,
            any(py, o.last_ns)?,
            any(py, o.packets)?,
            PyList::new(py, probes)?.into_any(),
            PyList::new(py, sample)?.into_any(),
            any(py, o.sample_level)?,
            conv.event(&Event::Packet(o.first.clone()))?,
            conv.event(&Event::Packet(o.crossing.clone()))?,
        ],
    )
}

impl Reducer for TgaScan {
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
        }
        Ok(())
    }

    fn tick<'py>(
        &mut self,
        _py: Python<'py>,
        now_ns: i64,
        _out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        self.core.tick(now_ns);
        Ok(())
    }

    fn flush<'py>(
        &mut self,
        _py: Python<'py>,
        _now_ns: i64,
        _out: &mut Outputs<'py>,
    ) -> PyResult<()> {
        self.core.flush();
        Ok(())
    }

    fn tables(&self) -> Vec<TableStat> {
        // The doorkeeper's "evictions" are the probes it refused a slot of the full table.
        let d = &self.core.doorkeeper;
        vec![
            self.core.table.table_stat(&self.name),
            (self.doorkeeper_name.clone(), d.held(), d.slots(), d.refused),
        ]
    }
}
