//! The verdict in words and as JSON, on constructed outcomes (snapshots).

use super::*;
use crate::localize::{Layerwise, ModuleDiff, Neuron};
use spikerc_compiler::passes::Precision;
use std::collections::BTreeMap;

fn outcome(verdict: Verdict, fd: Option<ModuleDiff>, lw: Option<Layerwise>, reasons: Vec<String>) -> Verification {
    let a = Array::new(vec![1, 1, 1, 2], vec![0.5, 0.25]);
    let spikes: BTreeMap<String, u64> = [("encoder_level1.0.residual.0".to_string(), 10u64)].into();
    let tolerances = Tolerances::default_for(Precision::F32);
    let comparison = compare((&a, &spikes), (&a, &spikes), &tolerances);
    Verification { verdict, first_divergence: fd, layerwise: lw, comparison, tolerances, reasons }
}

fn neuron(t: usize, margin: f64, bound: f64) -> Neuron {
    Neuron { t, n: 0, c: 3, y: 10, x: 7, margin, bound, reference_fired: margin >= 0.0 }
}

fn lw(disagreeing: Vec<String>, modules: Vec<ModuleDiff>) -> Layerwise {
    Layerwise { checked: 29, disagreeing, modules, output_diff: 1.2e-7, output_bound: 3.4e-6 }
}

#[test]
fn a_flip_is_named_with_its_neuron_margin_and_bound() {
    let d = ModuleDiff {
        module: "encoder_level3.0.residual.0".into(),
        differing: 1,
        beyond_bound: 0,
        after_flip: 0,
        max_bound: 2.5e-6,
        neurons: vec![neuron(5, 1.1e-7, 2.5e-6)],
    };
    let v = outcome(Verdict::Flip, Some(d.clone()), Some(lw(vec![], vec![d])), vec![]);
    insta::assert_snapshot!("flip", explain(&v));
    insta::assert_json_snapshot!("flip_json", json(&v));
}

#[test]
fn a_mismatch_names_the_neurons_beyond_the_bound_and_the_disagreeing_module() {
    let d = ModuleDiff {
        module: "encoder_level1.0.residual.3".into(),
        differing: 412,
        beyond_bound: 407,
        after_flip: 3,
        max_bound: 1.3e-5,
        neurons: vec![neuron(0, -3.2e-2, 1.1e-5), neuron(1, 0.11, 1.3e-5)],
    };
    let v = outcome(
        Verdict::Mismatch,
        Some(d.clone()),
        Some(lw(vec!["encoder_level1.0.residual.3".into()], vec![d])),
        vec![
            "407 of 412 differing neuron(s) of `encoder_level1.0.residual.3` lie beyond the flip bound".into(),
            "layer-wise, encoder_level1.0.residual.3 disagree(s) beyond the flip bound".into(),
        ],
    );
    insta::assert_snapshot!("mismatch", explain(&v));
}

#[test]
fn a_pass_without_the_layerwise_check_says_so() {
    let v = outcome(Verdict::Pass, None, None, vec![]);
    insta::assert_snapshot!("pass", explain(&v));
}
