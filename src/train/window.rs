//! Step records: the losses of the steps between two records (a logging window of `log_every`
//! steps, or the epoch's last ones), and the epoch's means built from the windows.

use crate::distill::StepLoss;
use std::collections::BTreeMap;
use std::time::Instant;
use tch::Tensor;

/// Mean training loss of an epoch, in total and per part.
pub struct EpochLoss {
    pub total: f64,
    pub parts: BTreeMap<String, f64>,
}

/// A running sum of losses: autograd ones stay on the device (read back only when logging, so
/// training does not wait on a device sync every step), fused ones are already on the host.
#[derive(Default)]
struct Sum {
    device: Option<Tensor>,
    host: f64,
}

impl Sum {
    fn add(&mut self, value: &Tensor) {
        let value = value.detach();
        self.device = Some(match self.device.take() {
            Some(sum) => sum + value,
            None => value,
        });
    }

    fn value(&self) -> f64 {
        self.host + self.device.as_ref().map_or(0.0, |t| t.double_value(&[]))
    }
}

/// Losses summed between two step records.
pub struct Window {
    total: Sum,
    parts: BTreeMap<&'static str, (Sum, usize)>,
    pub steps: usize,
    pub samples: usize,
    /// When the window began, moved on by the time paused in it.
    pub started: Instant,
}

impl Window {
    pub fn new() -> Window {
        Window {
            total: Sum::default(),
            parts: BTreeMap::new(),
            steps: 0,
            samples: 0,
            started: Instant::now(),
        }
    }

    /// Adds a step's loss (`objective` is its trained tensor).
    pub fn add(&mut self, loss: &StepLoss, objective: &Tensor, samples: usize) {
        match loss {
            StepLoss::Parts(parts) => {
                self.total.add(objective);
                for p in parts {
                    let (sum, n) = self.parts.entry(p.name).or_default();
                    sum.add(&p.value);
                    *n += 1;
                }
                self.steps += 1;
                self.samples += samples;
            }
            StepLoss::Fused { parts, .. } => {
                let total = parts.iter().map(|(_, weight, value)| weight * value).sum();
                self.add_host(total, parts.iter().map(|p| (p.0, p.2)), samples);
            }
        }
    }

    /// Adds a step's loss known on the host: its total and each named part's value.
    pub fn add_host(
        &mut self,
        total: f64,
        parts: impl IntoIterator<Item = (&'static str, f64)>,
        samples: usize,
    ) {
        self.total.host += total;
        for (name, value) in parts {
            let (sum, n) = self.parts.entry(name).or_default();
            sum.host += value;
            *n += 1;
        }
        self.steps += 1;
        self.samples += samples;
    }

    /// Mean loss and mean of each part over the window.
    pub fn means(&self) -> (f64, BTreeMap<String, f64>) {
        let parts = self
            .parts
            .iter()
            .map(|(name, (sum, n))| (name.to_string(), sum.value() / *n as f64))
            .collect();
        (self.total.value() / self.steps.max(1) as f64, parts)
    }

    /// Examples per second over the window, pauses left out.
    pub fn samples_per_sec(&self) -> f64 {
        self.samples as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }
}

/// The recorded windows of an epoch, weighted by their steps.
#[derive(Default)]
pub struct EpochSums {
    parts: BTreeMap<String, (f64, usize)>,
    loss: f64,
    steps: usize,
}

impl EpochSums {
    /// Adds a recorded window of `steps` steps with these means.
    pub fn add(&mut self, mean: f64, parts: &BTreeMap<String, f64>, steps: usize) {
        for (name, value) in parts {
            let e = self.parts.entry(name.clone()).or_insert((0.0, 0));
            *e = (e.0 + value * steps as f64, e.1 + steps);
        }
        self.loss += mean * steps as f64;
        self.steps += steps;
    }

    pub fn means(self) -> EpochLoss {
        EpochLoss {
            total: self.loss / self.steps.max(1) as f64,
            parts: (self.parts.into_iter())
                .map(|(k, (sum, n))| (k, sum / n.max(1) as f64))
                .collect(),
        }
    }
}
