//! The libtorch SpikerIR against the shared fixtures (both checkpoint formats), plus the
//! state_dict layout, export round trip, train mode and the surrogate gradient.

use std::path::PathBuf;

use tch::{nn, Device, Kind, Tensor};

use super::*;
use crate::spikerir::expected_tensors;

fn shared() -> PathBuf {
    std::env::var_os("SPIKERC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

fn fixture(name: &str) -> PathBuf {
    let d = shared().join("fixtures").join(name);
    assert!(d.is_dir(), "{}: missing (set SPIKERC_SHARED)", d.display());
    d
}

fn golden(dir: &std::path::Path) -> Checkpoint {
    Checkpoint::load(&dir.join("golden.safetensors")).unwrap()
}

fn tensor_of(ck: &Checkpoint, key: &str) -> Tensor {
    let t = &ck.tensors[key];
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(t.data.as_ref().unwrap()).reshape(shape.as_slice())
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from((a - b).abs().max()).unwrap()
}

fn check_fixture(name: &str, weights: &str) {
    let dir = fixture(name);
    let hp = HyperParams::from_file(&dir.join("meta.json")).unwrap();
    let (_vs, net) = SpikerIr::load(&dir.join(weights), &hp, Device::Cpu).unwrap();
    let g = golden(&dir);
    let x = tensor_of(&g, "input");
    let f = tch::no_grad(|| net.forward_full(&x, false));
    let d = max_abs(&f.output, &tensor_of(&g, "output"));
    assert!(d <= 1e-4, "{name}/{weights}: output max abs diff {d:e}");
    for (key, feat) in &f.features {
        let d = max_abs(feat, &tensor_of(&g, &format!("features/{key}")));
        assert!(d <= 1e-4, "{name}/{weights}: {key} max abs diff {d:e}");
    }
    let counts = f.spike_counts();
    let want: Vec<(&str, f32)> = g
        .tensors
        .iter()
        .filter_map(|(k, t)| Some((k.strip_prefix("spikes/")?, t.data.as_ref()?[0])))
        .collect();
    assert_eq!(counts.len(), want.len(), "{name}: LIF modules");
    for (module, expected) in want {
        let got = counts[module] as f64;
        let tol = (expected as f64 * 1e-4).max(0.0);
        assert!(
            (got - expected as f64).abs() <= tol,
            "{name}/{weights}: {module}: {got} spikes, golden {expected}"
        );
    }
    // Neuron counts: elements x T of every LIF input.
    assert!(f.lif.iter().all(|s| s.neurons > 0));
}

#[test]
fn l3_fixture_from_safetensors_and_pt() {
    check_fixture("spikerir-l3-d16", "model.safetensors");
    check_fixture("spikerir-l3-d16", "model.pt");
}

#[test]
fn l4_fixture_from_safetensors_and_pt() {
    check_fixture("spikerir-l4-d16", "model.safetensors");
    check_fixture("spikerir-l4-d16", "model.pt");
}

#[test]
fn variable_names_are_the_state_dict_keys() {
    let dir = fixture("spikerir-l4-d16");
    let ck = Checkpoint::load(&dir.join("model.safetensors")).unwrap();
    let hp = HyperParams::from_file(&dir.join("meta.json")).unwrap();
    let arch = crate::spikerir::Architecture::infer(&ck).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = SpikerIr::new(&vs.root(), &arch, &hp, Neuron::Lif).unwrap();
    let mut have: Vec<(String, Vec<usize>)> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.size().iter().map(|&d| d as usize).collect()))
        .collect();
    have.sort();
    let mut want: Vec<(String, Vec<usize>)> = ck
        .tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    want.sort();
    assert_eq!(have, want);
    // ... and the floating ones are exactly what the compiler's builder expects.
    let mut expected = expected_tensors(&arch, &hp).unwrap();
    expected.sort();
    let floats: Vec<_> = have
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .collect();
    assert_eq!(floats, expected);
}

#[test]
fn export_round_trip_gives_the_same_checkpoint() {
    let dir = fixture("spikerir-l3-d16");
    let src = Checkpoint::load(&dir.join("model.safetensors")).unwrap();
    let hp = HyperParams::from_file(&dir.join("meta.json")).unwrap();
    let (vs, _net) = SpikerIr::from_checkpoint(&src, &hp, Device::Cpu).unwrap();
    let tmp =
        std::env::temp_dir().join(format!("spikerc-export-{}.safetensors", std::process::id()));
    export_safetensors(&vs, &tmp).unwrap();
    let back = Checkpoint::load(&tmp).unwrap();
    std::fs::remove_file(&tmp).unwrap();
    assert_eq!(back, src);
    assert_eq!(to_checkpoint(&vs).unwrap(), src);
}

#[test]
fn train_mode_updates_bn_and_surrogate_gradient_flows() {
    tch::manual_seed(7);
    let ck = Checkpoint::load(&fixture("spikerir-l3-d16").join("model.safetensors")).unwrap();
    let arch = crate::spikerir::Architecture::infer(&ck).unwrap();
    let hp = HyperParams::default();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = SpikerIr::new(&vs.root(), &arch, &hp, Neuron::Lif).unwrap();
    let x = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let rm = net.encoders[0][0].res2.running_mean.copy();
    let (y, feats) = net.forward_features(&x, true);
    assert_eq!(y.size(), vec![2, 3, 16, 16]);
    assert_eq!(feats.len(), 3);
    assert_eq!(feats[0].size(), vec![2, 64, 4, 4]);
    assert_eq!(feats[2].size(), vec![2, 32, 16, 16]);
    // Running statistics moved, num_batches_tracked counted the batch.
    assert!(max_abs(&rm, &net.encoders[0][0].res2.running_mean) > 0.0);
    assert_eq!(
        i64::try_from(&net.encoders[0][0].res2.num_batches_tracked).unwrap(),
        1
    );
    // Gradients reach the first conv through every LIF (surrogate) ...
    let loss = (&y - &x).abs().mean(Kind::Float);
    loss.backward();
    let g = net.patch_embed.weight.grad();
    assert!(g.defined() && f64::try_from(g.abs().sum(Kind::Double)).unwrap() > 0.0);
    // ... and the residual branch's first conv, which only sees spikes.
    let g = net.encoders[0][0].res1.weight.grad();
    assert!(f64::try_from(g.abs().sum(Kind::Double)).unwrap() > 0.0);
}

#[test]
fn surrogate_is_exact_forward_and_sigmoid_backward() {
    let mut hp = HyperParams::default();
    hp.v_threshold = 0.5;
    let lif = Lif::new("l".into(), &hp, Neuron::Lif);
    let x = Tensor::from_slice(&[0.2f32, 0.5, 0.7])
        .reshape([1, 3])
        .set_requires_grad(true);
    let mut trace = layers::Trace::default();
    let s = lif.forward(&x, &mut trace);
    assert_eq!(
        Vec::<f32>::try_from(s.reshape([-1])).unwrap(),
        vec![0.0, 1.0, 1.0]
    );
    s.sum(Kind::Float).backward();
    let g = Vec::<f32>::try_from(x.grad().reshape([-1])).unwrap();
    for (gi, xi) in g.iter().zip([0.2f64, 0.5, 0.7]) {
        let sg = 1.0 / (1.0 + (-4.0 * (xi - 0.5)).exp());
        let want = 4.0 * sg * (1.0 - sg);
        assert!((*gi as f64 - want).abs() < 1e-5, "grad {gi} want {want}");
    }
    assert_eq!(f64::try_from(&trace.stats[0].spikes).unwrap(), 2.0);
}

#[test]
fn relu_twin_has_the_same_parameters_and_no_spikes() {
    let arch = crate::spikerir::Architecture {
        dim: 16,
        levels: 2,
        en_blocks: vec![1, 1],
        de_blocks: vec![1, 1],
        in_channels: 3,
        out_channels: 3,
    };
    let hp = HyperParams {
        time_steps: 1,
        reduction_t: 1,
        ..HyperParams::default()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let net = SpikerIr::new(&vs.root(), &arch, &hp, Neuron::Relu).unwrap();
    let x = Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let f = tch::no_grad(|| net.forward_full(&x, false));
    assert_eq!(f.output.size(), vec![1, 3, 8, 8]);
    assert!(f.lif.is_empty());
    // Same parameters as the spiking network (T = 1 changes only the time-attention MLP).
    assert_eq!(
        vs.variables().len(),
        expected_tensors(&arch, &hp).unwrap().len() + count_bn(&vs)
    );
    assert!(count_bn(&vs) > 0);
}

fn count_bn(vs: &nn::VarStore) -> usize {
    vs.variables()
        .keys()
        .filter(|k| k.ends_with("num_batches_tracked"))
        .count()
}

#[test]
fn bad_input_is_reported_not_panicked() {
    let dir = fixture("spikerir-l3-d16");
    let hp = HyperParams::from_file(&dir.join("meta.json")).unwrap();
    let (_vs, net) = SpikerIr::load(&dir.join("model.safetensors"), &hp, Device::Cpu).unwrap();
    let e = net
        .check_input(&Tensor::zeros([1, 3, 10, 16], (Kind::Float, Device::Cpu)))
        .unwrap_err();
    assert!(e.contains("10x16") && e.contains("divisible by 4"), "{e}");
    let e = net
        .check_input(&Tensor::zeros([1, 1, 16, 16], (Kind::Float, Device::Cpu)))
        .unwrap_err();
    assert!(e.contains("[N, 3, H, W]"), "{e}");
    // A checkpoint with a wrong shape is the importer's error, not a libtorch panic.
    let mut ck = Checkpoint::load(&dir.join("model.safetensors")).unwrap();
    ck.tensors.get_mut("output.0.bias").unwrap().shape = vec![1, 3];
    let e = SpikerIr::from_checkpoint(&ck, &hp, Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("output.0.bias"), "{e}");
}
