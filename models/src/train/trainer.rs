//! The H-KD trainer on libtorch: teacher phase (ANN twin, optional), student phase (spiking,
//! with or without distillation), validation, resumable state, export.
//!
//! Loss of the student: `L1(y, gt) + fft_weight * L1(rfft2(y), rfft2(gt)) + gamma * sum_l
//! MSE(P_l(s_l), A_l(t_l))`, the last term only with distillation; `s_l`/`t_l` are the student's
//! and teacher's `decoder_level{l}` outputs (student averaged over T), `P_l` a 1x1 projection
//! only where widths differ, `A_l` average pooling only where resolutions differ. The FFT
//! term compares the real and imaginary parts of the 2-D real FFT (as in ESDNet / MIMO-UNet).
//! The teacher is trained with the same image loss, no hints.
//!
//! Optimiser: AdamW (beta 0.9 / 0.999, eps 1e-8, decoupled weight decay) written out here
//! because its moments are part of the resumable state; lr follows [`super::cosine_lr`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Device, Reduction, Tensor};

use super::{cosine_lr, step_seed, TrainSet, ValSet};
use crate::eval::metrics;
use crate::spikerir::Architecture;
use crate::torch::{export_safetensors, load_checkpoint, Neuron, SpikerIr};
use crate::{Checkpoint, HyperParams};

/// Everything a run needs besides the data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    pub arch: Architecture,
    pub hp: HyperParams,
    /// Student steps.
    pub steps: usize,
    /// Teacher steps (0: no teacher phase; with distillation a teacher must then be loaded).
    pub teacher_steps: usize,
    /// Width of the teacher's first level (= the student's `dim` unless a wider teacher is asked).
    pub teacher_dim: usize,
    pub distill: bool,
    pub gamma: f64,
    /// Hint form: `raw` = plain MSE(s, t) with a 1x1 projection only where widths differ;
    /// `adapted` = a learned 1x1 adapter at every level (FitNets) and the MSE divided by the
    /// teacher feature's mean square (scale-free hints).
    #[serde(default)]
    pub hints: HintMode,
    pub fft_weight: f64,
    pub batch: usize,
    pub patch: usize,
    pub lr_max: f64,
    pub lr_min: f64,
    pub weight_decay: f64,
    pub val_every: usize,
    pub ckpt_every: usize,
    pub seed: u64,
}

/// How student features are compared with the teacher's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HintMode {
    /// `MSE(P(s), t)`, `P` a 1x1 projection only where widths differ.
    Raw,
    /// `MSE(P(s), t) / mean(t^2)` with a learned 1x1 adapter `P` at every level.
    #[default]
    Adapted,
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One row of the training record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub phase: String,
    pub step: usize,
    pub lr: f64,
    /// Mean training loss since the previous row (NaN, stored as null, at step 0).
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Validation PSNR (dB) after `step` steps.
    pub val_psnr: f64,
    /// Wall seconds spent in this phase so far.
    pub wall_s: f64,
}

/// What the trainer reports while it runs.
#[derive(Clone, Debug)]
pub enum Event {
    Start {
        phase: &'static str,
        from: usize,
        total: usize,
    },
    Step {
        phase: &'static str,
        step: usize,
        loss: f64,
        lr: f64,
    },
    Val(CurvePoint),
}

/// Resumable progress (`state/progress.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub teacher_done: bool,
    /// Steps completed in the current phase.
    pub step: usize,
    /// Both phases finished and `student.safetensors` written.
    #[serde(default)]
    pub finished: bool,
    pub phase: String,
    pub curve: Vec<CurvePoint>,
}

/// Failure of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Import(#[from] crate::ImportError),
    #[error(transparent)]
    Data(#[from] crate::eval::EvalError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Config(String),
    #[error("training diverged: loss is {loss} at {phase} step {step}")]
    Diverged {
        phase: String,
        step: usize,
        loss: f64,
    },
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The AdamW moments of a list of named parameters.
struct AdamW {
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
    wd: f64,
}

impl AdamW {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(stores: &[(&str, &nn::VarStore)], wd: f64) -> AdamW {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (prefix, vs) in stores {
            let mut vars: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .filter(|(_, t)| t.requires_grad())
                .collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            named.extend(vars.into_iter().map(|(n, t)| (format!("{prefix}{n}"), t)));
        }
        let m = named.iter().map(|(_, t)| t.zeros_like()).collect();
        let v = named.iter().map(|(_, t)| t.zeros_like()).collect();
        let (names, params) = named.into_iter().unzip();
        AdamW {
            names,
            params,
            m,
            v,
            t: 0,
            wd,
        }
    }

    fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    fn step(&mut self, lr: f64) {
        self.t += 1;
        let (c1, c2) = (1.0 - Self::B1.powi(self.t), 1.0 - Self::B2.powi(self.t));
        tch::no_grad(|| {
            for i in 0..self.params.len() {
                let g = self.params[i].grad();
                if !g.defined() {
                    continue;
                }
                self.m[i] = &self.m[i] * Self::B1 + &g * (1.0 - Self::B1);
                self.v[i] = &self.v[i] * Self::B2 + (&g * &g) * (1.0 - Self::B2);
                let upd = (&self.m[i] / c1) / ((&self.v[i] / c2).sqrt() + Self::EPS);
                let new = &self.params[i] * (1.0 - lr * self.wd) - upd * lr;
                self.params[i].copy_(&new);
            }
        });
    }

    fn save(&self, path: &Path) -> Result<(), TrainError> {
        let mut named: Vec<(String, Tensor)> = vec![("t".into(), Tensor::from(self.t as i64))];
        for (i, n) in self.names.iter().enumerate() {
            named.push((format!("m.{n}"), self.m[i].shallow_clone()));
            named.push((format!("v.{n}"), self.v[i].shallow_clone()));
            named.push((format!("p.{n}"), self.params[i].detach()));
        }
        let tmp = path.with_extension("tmp");
        Tensor::write_safetensors(&named, &tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
    }

    /// Restores moments and parameters (the projections live only here).
    fn load(&mut self, path: &Path) -> Result<(), TrainError> {
        let map: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(path)?.into_iter().collect();
        let get = |k: &str| {
            map.get(k)
                .ok_or_else(|| file_err(path, format!("optimizer state has no `{k}`")))
        };
        self.t = get("t")?.int64_value(&[]) as i32;
        for i in 0..self.names.len() {
            let n = &self.names[i];
            self.m[i] = get(&format!("m.{n}"))?.to_device(self.params[i].device());
            self.v[i] = get(&format!("v.{n}"))?.to_device(self.params[i].device());
            let p = get(&format!("p.{n}"))?.to_device(self.params[i].device());
            tch::no_grad(|| self.params[i].copy_(&p));
        }
        Ok(())
    }
}

/// L1 + fft_weight x FFT-L1 between a restored batch and its ground truth.
pub fn image_loss(y: &Tensor, gt: &Tensor, fft_weight: f64) -> Tensor {
    let l1 = y.l1_loss(gt, Reduction::Mean);
    if fft_weight == 0.0 {
        return l1;
    }
    let f = |t: &Tensor| {
        t.fft_rfft2(None::<&[i64]>, [-2i64, -1], "backward")
            .view_as_real()
    };
    l1 + f(y).l1_loss(&f(gt), Reduction::Mean) * fft_weight
}

/// Student-to-teacher hint alignment for one decoder level.
struct Hint {
    proj: Option<nn::Conv2D>,
    normalize: bool,
}

impl Hint {
    fn loss(&self, s: &Tensor, t: &Tensor) -> Tensor {
        let s = match &self.proj {
            Some(p) => p.forward(s),
            None => s.shallow_clone(),
        };
        let (ss, ts) = (s.size(), t.size());
        let t = if ss[2..] != ts[2..] {
            t.adaptive_avg_pool2d([ss[2], ss[3]])
        } else {
            t.shallow_clone()
        };
        let mse = s.mse_loss(&t, Reduction::Mean);
        if self.normalize {
            mse / (t.square().mean(tch::Kind::Float) + 1e-6)
        } else {
            mse
        }
    }
}

/// A training run writing into `out` (see [`Trainer::run`]).
pub struct Trainer<'a> {
    pub cfg: TrainConfig,
    pub device: Device,
    pub train: &'a TrainSet,
    pub val: &'a ValSet,
    pub out: PathBuf,
    /// A trained teacher to load instead of the teacher phase.
    pub teacher: Option<PathBuf>,
    /// Stop (state saved, resumable) after this many steps in this invocation.
    pub stop_after: Option<usize>,
}

/// The teacher's hyperparameters: one time step (ReLU has no state, T copies would be equal),
/// time-attention reduction 1 so its MLP has a unit.
pub fn teacher_hp(hp: &HyperParams) -> HyperParams {
    HyperParams {
        time_steps: 1,
        reduction_t: 1,
        ..hp.clone()
    }
}

/// The teacher's architecture: the student's with the teacher's width.
pub fn teacher_arch(cfg: &TrainConfig) -> Architecture {
    Architecture {
        dim: cfg.teacher_dim,
        ..cfg.arch.clone()
    }
}

/// Mean validation PSNR (8-bit quantised output vs 8-bit target).
pub fn validate(net: &SpikerIr, val: &ValSet, device: Device) -> f64 {
    tch::no_grad(|| {
        let mut sum = 0.0;
        for (input, target) in &val.items {
            let x = Tensor::from_slice(input)
                .view([1, 3, target.h as i64, target.w as i64])
                .to_device(device);
            let y = net
                .forward_t(&x, false)
                .to_device(Device::Cpu)
                .contiguous()
                .view([-1]);
            let y: Vec<f32> = Vec::try_from(&y).expect("f32 output");
            sum += metrics::psnr(&metrics::quantize_u8(&y), &target.data);
        }
        sum / val.items.len().max(1) as f64
    })
}

impl Trainer<'_> {
    fn state_dir(&self) -> PathBuf {
        self.out.join("state")
    }

    fn progress_path(&self) -> PathBuf {
        self.state_dir().join("progress.json")
    }

    /// Reads `state/progress.json` when present.
    pub fn load_progress(&self) -> Result<Option<Progress>, TrainError> {
        let p = self.progress_path();
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p).map_err(|e| file_err(&p, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| file_err(&p, e))
    }

    fn save_progress(&self, prog: &Progress) -> Result<(), TrainError> {
        let p = self.progress_path();
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(prog).expect("serialisable"))
            .map_err(|e| file_err(&tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| file_err(&p, e))
    }

    /// Runs (or resumes, when `resume` and a state exists) the teacher phase then the student
    /// phase. Writes `teacher.safetensors` (when distilling), `student.safetensors` (the
    /// importable checkpoint) and keeps `state/` for resuming. Returns the record.
    /// With [`Trainer::stop_after`] the run may stop early with `finished == false`.
    pub fn run(&self, resume: bool, on: &mut dyn FnMut(Event)) -> Result<Progress, TrainError> {
        let c = &self.cfg;
        // Reject impossible architectures before anything is written.
        SpikerIr::new(
            &nn::VarStore::new(Device::Cpu).root(),
            &c.arch,
            &c.hp,
            Neuron::Lif,
        )?;
        if c.distill && self.teacher.is_none() {
            SpikerIr::new(
                &nn::VarStore::new(Device::Cpu).root(),
                &teacher_arch(c),
                &teacher_hp(&c.hp),
                Neuron::Relu,
            )?;
        }
        if c.batch == 0 || c.patch == 0 {
            return Err(TrainError::Config(format!(
                "batch {} and patch {} must be positive",
                c.batch, c.patch
            )));
        }
        let div = 1usize << (c.arch.levels - 1);
        if !c.patch.is_multiple_of(div) {
            return Err(TrainError::Config(format!(
                "patch {} is not divisible by 2^(levels-1) = {div}",
                c.patch
            )));
        }
        if self.train.min_side() < c.patch {
            return Err(TrainError::Config(format!(
                "patch {} is larger than the smallest training image side {}",
                c.patch,
                self.train.min_side()
            )));
        }
        if self.train.images.is_empty() {
            return Err(TrainError::Config("the training set is empty".into()));
        }
        std::fs::create_dir_all(self.state_dir()).map_err(|e| file_err(&self.state_dir(), e))?;
        let mut prog = if resume {
            self.load_progress()?.unwrap_or_default()
        } else {
            Progress::default()
        };
        tch::manual_seed(c.seed as i64);
        let mut budget = self.stop_after.unwrap_or(usize::MAX);

        // Teacher.
        let mut teacher: Option<(nn::VarStore, SpikerIr)> = None;
        if c.distill {
            let tvs = nn::VarStore::new(self.device);
            let tnet = SpikerIr::new(
                &tvs.root(),
                &teacher_arch(c),
                &teacher_hp(&c.hp),
                Neuron::Relu,
            )?;
            let tpath = self.out.join("teacher.safetensors");
            if let Some(given) = &self.teacher {
                load_checkpoint(&tvs, &Checkpoint::load(given)?)?;
            } else if prog.teacher_done {
                load_checkpoint(&tvs, &Checkpoint::load(&tpath)?)?;
            } else if c.teacher_steps == 0 {
                return Err(TrainError::Config(
                    "distillation needs a teacher: give --teacher FILE or --teacher-steps N > 0"
                        .into(),
                ));
            } else {
                if !self.fit(
                    "teacher",
                    &tvs,
                    &tnet,
                    None,
                    c.teacher_steps,
                    &mut prog,
                    &mut budget,
                    on,
                )? {
                    return Ok(prog);
                }
                export_safetensors(&tvs, &tpath)?;
                prog.teacher_done = true;
                prog.phase = String::new();
                prog.step = 0;
                self.save_progress(&prog)?;
            }
            teacher = Some((tvs, tnet));
        }

        // Student.
        let svs = nn::VarStore::new(self.device);
        let snet = SpikerIr::new(&svs.root(), &c.arch, &c.hp, Neuron::Lif)?;
        if !self.fit(
            "student",
            &svs,
            &snet,
            teacher.as_ref().map(|(_, t)| t),
            c.steps,
            &mut prog,
            &mut budget,
            on,
        )? {
            return Ok(prog);
        }
        export_safetensors(&svs, &self.out.join("student.safetensors"))?;
        prog.finished = true;
        self.save_progress(&prog)?;
        Ok(prog)
    }

    #[allow(clippy::too_many_arguments)]
    fn fit(
        &self,
        phase: &'static str,
        vs: &nn::VarStore,
        net: &SpikerIr,
        teacher: Option<&SpikerIr>,
        total: usize,
        prog: &mut Progress,
        budget: &mut usize,
        on: &mut dyn FnMut(Event),
    ) -> Result<bool, TrainError> {
        let c = &self.cfg;
        // 1x1 projections where the teacher is wider (not part of the exported student).
        let pvs = nn::VarStore::new(self.device);
        let hints: Vec<Hint> = match teacher {
            None => vec![],
            Some(t) => (1..=c.arch.levels)
                .rev()
                .map(|l| {
                    let width = |a: &Architecture| {
                        if l == 1 && a.levels > 1 {
                            2 * a.width(1)
                        } else {
                            a.width(l)
                        }
                    };
                    let (sw, tw) = (width(&c.arch), width(&t.arch));
                    let adapted = c.hints == HintMode::Adapted;
                    let proj = (adapted || sw != tw).then(|| {
                        nn::conv2d(
                            pvs.root() / format!("proj{l}"),
                            sw as i64,
                            tw as i64,
                            1,
                            Default::default(),
                        )
                    });
                    Hint {
                        proj,
                        normalize: adapted,
                    }
                })
                .collect(),
        };
        let mut opt = AdamW::new(&[("", vs), ("hint.", &pvs)], c.weight_decay);
        let sd = self.state_dir();
        let (ckpt_model, ckpt_opt) = (
            sd.join(format!("{phase}.safetensors")),
            sd.join(format!("{phase}.optim.safetensors")),
        );
        let mut start = 0;
        if prog.phase == phase && prog.step > 0 {
            load_checkpoint(vs, &Checkpoint::load(&ckpt_model)?)?;
            // Integer buffers (BN `num_batches_tracked`) too, so the exported file is identical.
            let vars = vs.variables();
            for (name, t) in Tensor::read_safetensors(&ckpt_model)? {
                if let Some(v) = vars.get(&name).filter(|v| !v.is_floating_point()) {
                    let mut v = v.shallow_clone();
                    tch::no_grad(|| v.copy_(&t));
                }
            }
            opt.load(&ckpt_opt)?;
            start = prog.step;
        } else {
            prog.curve.retain(|p| p.phase != phase);
        }
        prog.phase = phase.to_string();
        let phase_id = if phase == "teacher" { 0 } else { 1 };
        on(Event::Start {
            phase,
            from: start,
            total,
        });
        let t0 = Instant::now();
        let wall0 = prog
            .curve
            .iter()
            .rev()
            .find(|p| p.phase == phase)
            .map_or(0.0, |p| p.wall_s);
        if start == 0 {
            let v = validate(net, self.val, self.device);
            let point = CurvePoint {
                phase: phase.into(),
                step: 0,
                lr: c.lr_max,
                loss: f64::NAN,
                val_psnr: v,
                wall_s: 0.0,
            };
            on(Event::Val(point.clone()));
            prog.curve.push(point);
        }
        let (n, p) = (c.batch as i64, c.patch as i64);
        let (mut loss_sum, mut loss_n) = (0.0, 0usize);
        for step in start..total {
            if *budget == 0 {
                return Ok(false);
            }
            *budget -= 1;
            let lr = cosine_lr(step, total, c.lr_max, c.lr_min);
            let mut rng = ChaCha8Rng::seed_from_u64(step_seed(c.seed, phase_id, step));
            let b = self.train.batch(c.batch, c.patch, &mut rng);
            let x = Tensor::from_slice(&b.input)
                .view([n, 3, p, p])
                .to_device(self.device);
            let gt = Tensor::from_slice(&b.target)
                .view([n, 3, p, p])
                .to_device(self.device);
            let (y, feats) = net.forward_features(&x, true);
            let mut loss = image_loss(&y, &gt, c.fft_weight);
            if let Some(t) = teacher {
                let tfeats = tch::no_grad(|| t.forward_features(&x, false).1);
                for ((h, s), tf) in hints.iter().zip(&feats).zip(&tfeats) {
                    loss += h.loss(s, tf) * c.gamma;
                }
            }
            opt.zero_grad();
            loss.backward();
            opt.step(lr);
            let lv = loss.double_value(&[]);
            if !lv.is_finite() {
                return Err(TrainError::Diverged {
                    phase: phase.into(),
                    step,
                    loss: lv,
                });
            }
            loss_sum += lv;
            loss_n += 1;
            on(Event::Step {
                phase,
                step: step + 1,
                loss: lv,
                lr,
            });
            let done = step + 1;
            if c.val_every > 0 && (done % c.val_every == 0 || done == total) {
                let v = validate(net, self.val, self.device);
                let point = CurvePoint {
                    phase: phase.into(),
                    step: done,
                    lr,
                    loss: loss_sum / loss_n.max(1) as f64,
                    val_psnr: v,
                    wall_s: wall0 + t0.elapsed().as_secs_f64(),
                };
                (loss_sum, loss_n) = (0.0, 0);
                on(Event::Val(point.clone()));
                prog.curve.push(point);
            }
            if (c.ckpt_every > 0 && done % c.ckpt_every == 0) || done == total || *budget == 0 {
                export_safetensors(vs, &ckpt_model)?;
                opt.save(&ckpt_opt)?;
                prog.step = done;
                self.save_progress(prog)?;
            }
        }
        Ok(true)
    }
}

/// The record of the curve as CSV (`phase,step,lr,loss,val_psnr,wall_s`).
pub fn curve_csv(curve: &[CurvePoint]) -> String {
    let mut s = String::from("phase,step,lr,loss,val_psnr,wall_s\n");
    for p in curve {
        s.push_str(&format!(
            "{},{},{:.6e},{:.6},{:.4},{:.1}\n",
            p.phase, p.step, p.lr, p.loss, p.val_psnr, p.wall_s
        ));
    }
    s
}

/// CUDA when libtorch sees a GPU, else the CPU.
pub fn best_device() -> Device {
    Device::cuda_if_available()
}

/// Sets libtorch's intra-op thread count.
pub fn set_threads(n: usize) {
    tch::set_num_threads(n.max(1) as i32);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> (Architecture, HyperParams) {
        let arch = Architecture {
            dim: 4,
            levels: 2,
            en_blocks: vec![1, 0],
            de_blocks: vec![0, 1],
            in_channels: 3,
            out_channels: 3,
        };
        let hp = HyperParams {
            reduction_c: 4,
            ..HyperParams::default()
        };
        (arch, hp)
    }

    #[test]
    fn image_loss_is_zero_on_identical_and_counts_the_fft_term() {
        let a = Tensor::rand([2, 3, 8, 8], (tch::Kind::Float, Device::Cpu));
        assert_eq!(image_loss(&a, &a, 0.1).double_value(&[]), 0.0);
        let b = &a + 0.1;
        let l1 = image_loss(&a, &b, 0.0).double_value(&[]);
        assert!((l1 - 0.1).abs() < 1e-6, "{l1}");
        // A constant offset only moves the DC coefficient of the FFT.
        assert!(image_loss(&a, &b, 0.1).double_value(&[]) > l1);
    }

    #[test]
    fn surrogate_gradients_reach_every_layer_and_adamw_moves_the_weights() {
        tch::manual_seed(0);
        let (arch, hp) = tiny();
        let vs = nn::VarStore::new(Device::Cpu);
        let net = SpikerIr::new(&vs.root(), &arch, &hp, Neuron::Lif).unwrap();
        let mut opt = AdamW::new(&[("", &vs)], 0.05);
        let before: Vec<Tensor> = opt.params.iter().map(|p| p.detach().copy()).collect();
        let x = Tensor::rand([2, 3, 16, 16], (tch::Kind::Float, Device::Cpu));
        let gt = Tensor::rand([2, 3, 16, 16], (tch::Kind::Float, Device::Cpu));
        let mut losses = vec![];
        for _ in 0..3 {
            let loss = image_loss(&net.forward_t(&x, true), &gt, 0.1);
            opt.zero_grad();
            loss.backward();
            // The convs behind LIF neurons only get gradients through the surrogate.
            let g = vs.variables()["encoder_level1.0.residual.4.weight"].grad();
            assert!(g.defined() && g.abs().sum(tch::Kind::Double).double_value(&[]) > 0.0);
            opt.step(5e-4);
            losses.push(loss.double_value(&[]));
        }
        assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
        let moved = opt
            .params
            .iter()
            .zip(&before)
            .filter(|(p, b)| !p.equal(b))
            .count();
        assert_eq!(
            moved,
            opt.params.len(),
            "every trainable parameter should move"
        );
    }

    #[test]
    fn optimizer_state_round_trips() {
        let (arch, hp) = tiny();
        let vs = nn::VarStore::new(Device::Cpu);
        let net = SpikerIr::new(&vs.root(), &arch, &hp, Neuron::Lif).unwrap();
        let mut opt = AdamW::new(&[("", &vs)], 0.05);
        let x = Tensor::rand([1, 3, 8, 8], (tch::Kind::Float, Device::Cpu));
        let loss = image_loss(&net.forward_t(&x, true), &x, 0.1);
        loss.backward();
        opt.step(1e-3);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("o.safetensors");
        opt.save(&p).unwrap();
        let vs2 = nn::VarStore::new(Device::Cpu);
        let _net2 = SpikerIr::new(&vs2.root(), &arch, &hp, Neuron::Lif).unwrap();
        let mut opt2 = AdamW::new(&[("", &vs2)], 0.05);
        opt2.load(&p).unwrap();
        assert_eq!(opt2.t, 1);
        for i in 0..opt.params.len() {
            assert!(
                opt.params[i].equal(&opt2.params[i])
                    && opt.m[i].equal(&opt2.m[i])
                    && opt.v[i].equal(&opt2.v[i])
            );
        }
    }
}
