//! The lynxi back end and the simulator against the runtime, the interpreter, the shared
//! fixtures' exact op counts, and hand-computed counts.

mod common;

use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::ir::{Conv2d, Lif, Reset};
use spikerc_compiler::passes::{optimize, Precision};
use spikerc_compiler::{Artifact, ArtifactMeta, Graph, Op, Tensor};
use spikerc_runtime::{Program, RunOptions};
use spikerc_targets::lynxi::{self, Options};
use spikerc_targets::machine::{Machine, PRESETS};
use spikerc_targets::{load_dir, simulate, Report, Schedule, SimOptions};
use std::path::Path;

fn artifact(dir: &Path, precision: Precision) -> Artifact {
    spikerc_models::compile_checkpoint(
        &dir.join("model.safetensors"),
        &common::hyper(dir),
        precision,
    )
    .unwrap()
}

fn size(input: &Array) -> [usize; 2] {
    [input.shape[2], input.shape[3]]
}

/// Compiles (default schedule), writes, reloads and simulates.
fn deploy_and_simulate(
    art: &Artifact,
    machine: &Machine,
    input: &Array,
) -> (spikerc_targets::Simulation, tempfile::TempDir) {
    deploy_and_simulate_with(art, machine, input, Schedule::Auto)
}

fn deploy_and_simulate_with(
    art: &Artifact,
    machine: &Machine,
    input: &Array,
    schedule: Schedule,
) -> (spikerc_targets::Simulation, tempfile::TempDir) {
    let dep = lynxi::compile_with(
        art,
        machine,
        &Options {
            input_size: size(input),
            preset: machine.name.clone(),
        },
        schedule,
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("deploy");
    dep.write_dir(&dir).unwrap();
    let loaded = load_dir(&dir).unwrap();
    let sim = simulate(&loaded, input, &SimOptions::default()).unwrap();
    (sim, tmp)
}

fn bits(a: &Array) -> Vec<u32> {
    a.data.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn fixtures_deploy_on_every_preset_and_schedule_and_simulate_bit_exact_with_the_runtime() {
    for dir in common::fixtures() {
        let art = artifact(&dir, Precision::F16);
        let input = common::golden(&dir).input;
        let reference = Program::new(&art.graph)
            .run(&input, &RunOptions::default())
            .unwrap();
        let runs = PRESETS.iter().flat_map(|(p, _)| {
            // Every schedule on the two headline presets, the default on the others.
            let all = matches!(*p, "ka200-like" | "tianjic-like");
            Schedule::ALL
                .into_iter()
                .filter(move |s| all || *s == Schedule::Auto)
                .map(move |s| (*p, s))
        });
        for (preset, schedule) in runs {
            let m = Machine::preset(preset).unwrap();
            let (sim, _tmp) = deploy_and_simulate_with(&art, &m, &input, schedule);
            let preset = format!("{preset} {schedule}");
            assert_eq!(sim.report.schedule, schedule.to_string());
            assert_eq!(sim.report.chips, m.card.chips);
            assert_eq!(sim.outputs.len(), 1);
            assert_eq!(sim.outputs[0].shape, reference.outputs[0].shape);
            assert!(
                bits(&sim.outputs[0]) == bits(&reference.outputs[0]),
                "{} on {preset}: output differs from the runtime",
                dir.display()
            );
            // The simulator's own AC count (from observed spike tensors) equals what the
            // runtime's kernels performed, module by module.
            for m in &sim.report.modules {
                let rt = reference.ops.get(&m.name).map(|o| o.ac).unwrap_or(0);
                assert_eq!(m.ac, rt, "{}: AC of {} on {preset}", dir.display(), m.name);
            }
            assert_eq!(sim.report.ops.ac, reference.total_ops().ac);
            assert_eq!(
                sim.report.ops.neuron_updates,
                reference.total_ops().neuron_updates
            );
            assert_eq!(
                sim.report.ops.spikes,
                reference.spikes.values().sum::<u64>()
            );
            assert!(sim.report.latency_cycles > 0 && sim.report.energy_pj > 0.0);
        }
    }
}

#[test]
fn simulated_output_equals_the_interpreter_on_the_l3_fixture() {
    let dir = common::fixtures()
        .into_iter()
        .find(|d| d.ends_with("spikerir-l3-d16"))
        .unwrap();
    let art = artifact(&dir, Precision::F16);
    let input = common::golden(&dir).input;
    let exec = interp::run(&art.graph, &input).unwrap();
    let (sim, _tmp) = deploy_and_simulate(&art, &Machine::preset("ka200-like").unwrap(), &input);
    assert!(bits(&sim.outputs[0]) == bits(&exec.outputs[0]));
    let spikes: u64 = exec.spikes.values().sum();
    assert_eq!(sim.report.ops.spikes, spikes);
}

#[test]
fn ac_and_mac_counts_equal_the_fixtures_ops_json() {
    // f32 artifacts reproduce the fixtures' spikes exactly, so their op counts must match.
    for dir in common::fixtures() {
        let art = artifact(&dir, Precision::F32);
        let input = common::golden(&dir).input;
        let (sim, _tmp) =
            deploy_and_simulate(&art, &Machine::preset("ka200-like").unwrap(), &input);
        let ops: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("ops.json")).unwrap()).unwrap();
        let modules = ops["modules"].as_object().unwrap();
        let mut checked = 0;
        for (name, o) in modules {
            let m = sim
                .report
                .modules
                .iter()
                .find(|m| &m.name == name)
                .unwrap_or_else(|| panic!("module {name} missing"));
            assert_eq!(
                m.ac,
                o["ac"].as_u64().unwrap(),
                "{}: AC of {name}",
                dir.display()
            );
            assert_eq!(
                m.mac,
                o["mac"].as_u64().unwrap(),
                "{}: MAC of {name}",
                dir.display()
            );
            if let Some(rate) = o["in_rate"].as_f64() {
                assert!(
                    (m.firing_rate.unwrap() - rate).abs() < 1e-6,
                    "{name}: rate {:?} vs {rate}",
                    m.firing_rate
                );
            }
            checked += 1;
        }
        assert!(checked > 20);
        assert_eq!(
            modules
                .keys()
                .map(|k| sim.report.modules.iter().find(|m| &m.name == k).unwrap().ac)
                .sum::<u64>(),
            ops["total"]["ac"].as_u64().unwrap()
        );
    }
}

/// Energy is exactly counts x table, by action, and the parts add up.
fn check_energy(r: &Report, m: &Machine, fp16: bool) {
    let e = &m.energy;
    let ws = m.sram_energy(m.core.weight_sram_bytes);
    let ss = m.sram_energy(m.core.state_sram_bytes);
    let n = r.images as f64;
    let expect = [
        ("ac", r.ops.ac as f64 * m.ac_pj(fp16)),
        ("mac", r.ops.mac as f64 * m.mac_pj(fp16)),
        (
            "neuron_update",
            r.ops.neuron_updates as f64 * e.neuron_update_pj,
        ),
        ("vector_op", r.ops.vector_ops as f64 * e.vector_op_pj),
        ("reg_read", r.ops.reg_read_bytes * e.reg_pj_per_byte),
        (
            "weight_sram_read",
            r.ops.weight_sram_read_bytes * ws.read_pj_per_byte,
        ),
        (
            "state_sram_read",
            r.ops.state_sram_read_bytes * ss.read_pj_per_byte,
        ),
        (
            "state_sram_write",
            r.ops.state_sram_write_bytes * ss.write_pj_per_byte,
        ),
        ("dram", r.ops.dram_bytes as f64 * e.dram_pj_per_byte),
        ("noc_hop", r.ops.packet_hops as f64 * e.hop_pj),
        ("chip_link", r.ops.chip_link_bytes * m.card.link_pj_per_byte),
    ];
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-3;
    for (action, want) in expect {
        let got = r.energy_by_action[action];
        assert!(close(got, want / n), "{action}: {got} vs {}", want / n);
    }
    let by_action: f64 = r.energy_by_action.values().sum();
    let by_module: f64 = r.modules.iter().map(|m| m.energy_pj).sum();
    let by_core: f64 = r.cores.iter().map(|c| c.energy_pj).sum();
    assert!(
        close(by_action, r.energy_pj) && close(by_module, r.energy_pj),
        "{by_action} {by_module} {}",
        r.energy_pj
    );
    assert!(
        (by_core - r.energy_pj).abs() <= 1e-6 * r.energy_pj,
        "cores {by_core} vs {}",
        r.energy_pj
    );
    // Eq. 1 with the reported counts: every spiking conv's fr x dense = its exact ACs up to
    // border effects, so the paper figure lies between 0.9 x AC + 4.6 x MAC and the ANN-like
    // bound.
    let lower = (0.9 * r.ops.ac as f64 + 4.6 * r.ops.mac as f64) / n;
    assert!(
        r.paper_energy_pj >= lower * 0.999,
        "{} < {lower}",
        r.paper_energy_pj
    );
    assert!((r.snn_ann_ratio - r.paper_energy_pj / r.ann_equivalent_energy_pj).abs() < 1e-9);
}

#[test]
fn energy_is_counts_times_the_energy_table_on_every_preset() {
    let dir = common::fixtures()
        .into_iter()
        .find(|d| d.ends_with("spikerir-l4-d16"))
        .unwrap();
    let art = artifact(&dir, Precision::F16);
    let input = common::golden(&dir).input;
    for (preset, _) in PRESETS {
        let m = Machine::preset(preset).unwrap();
        let (sim, _tmp) = deploy_and_simulate(&art, &m, &input);
        assert_eq!(sim.report.images, 2);
        check_energy(&sim.report, &m, true);
        let busy: u64 = sim.report.cores.iter().map(|c| c.busy_cycles).sum();
        assert!(busy > 0);
        for c in &sim.report.cores {
            assert!(
                c.utilisation <= 1.0 + 1e-9,
                "core {} utilisation {}",
                c.id,
                c.utilisation
            );
            assert_eq!(c.steps.len(), sim.report.time_steps);
        }
    }
}

/// input [1,1,4,4] -> repeat T=2 -> LIF(vth 0.5, tau 2, hard reset 0) -> conv.ac 1->2 3x3
/// pad 1 (weights 1) -> mean_t -> output.
fn tiny() -> Artifact {
    let mut g = Graph::new();
    let x = g.add("input", Op::Input { channels: 1 }, &[]).unwrap();
    let r = g.add("input", Op::RepeatTime { steps: 2 }, &[x]).unwrap();
    let s = g
        .add(
            "lif",
            Op::Lif(Lif {
                tau: 2.0,
                v_threshold: 0.5,
                reset: Reset::Hard { v_reset: 0.0 },
                decay_input: false,
            }),
            &[r],
        )
        .unwrap();
    let conv = Op::Conv2d(Conv2d {
        weight: Tensor::from_f32(vec![2, 1, 3, 3], vec![1.0; 18]),
        bias: None,
        stride: [1, 1],
        padding: [1, 1],
        event_driven: false,
        algorithm: Default::default(),
    });
    let c = g.add("conv", conv, &[s]).unwrap();
    let m = g.add("mean", Op::MeanTime, &[c]).unwrap();
    g.add("output", Op::Output, &[m]).unwrap();
    let (verified, report) = optimize(g, Precision::F16, true).unwrap();
    let meta = ArtifactMeta {
        model: "tiny".into(),
        source: "tiny".into(),
        precision: Precision::F16,
        time_steps: 2,
        producer: "test".into(),
    };
    Artifact::new(meta, report, verified)
}

#[test]
fn counts_on_a_tiny_graph_are_the_hand_computed_ones() {
    let art = tiny();
    // Pixel (0,0) = 1.0 fires at t=0 and t=1; (1,1) = 0.3 never (0.3, then 0.45);
    // (2,2) = 0.4 fires at t=1 only (0.4, then 0.2 + 0.4 = 0.6).
    let mut px = vec![0.0f32; 16];
    px[0] = 1.0;
    px[5] = 0.3;
    px[10] = 0.4;
    let input = Array::new(vec![1, 1, 4, 4], px);
    let m = Machine::preset("ka200-like").unwrap();
    let (sim, _tmp) = deploy_and_simulate(&art, &m, &input);
    let r = &sim.report;
    let module = |n: &str| r.modules.iter().find(|m| m.name == n).unwrap();
    // Corner spike reaches 2x2 outputs, the interior one 3x3; 2 output channels.
    // t=0: 4*2 = 8; t=1: 8 + 9*2 = 26.
    assert_eq!(module("conv").ac, 34);
    assert_eq!(module("conv").spikes_in, 3);
    assert_eq!(module("conv").mac, 0);
    assert_eq!(module("lif").neuron_updates, 32);
    assert_eq!(module("lif").spikes_out, 3);
    assert!((module("lif").firing_rate.unwrap() - 3.0 / 32.0).abs() < 1e-12);
    assert_eq!(module("mean").vector_ops, 2 * 2 * 16);
    assert_eq!(
        r.steps.iter().map(|s| s.ac).collect::<Vec<_>>(),
        vec![8, 26]
    );
    assert_eq!(r.ops.ac, 34);
    // Paper figure: fr_in = 3/32 of the dense 2*16*9*2 = 576 ops -> 0.9 * 54 pJ; no MACs.
    assert!((r.paper_energy_pj - 0.9 * 576.0 * 3.0 / 32.0).abs() < 1e-9);
    // ANN twin: the conv densely once: 2*16*9 = 288 MACs x 4.6 pJ.
    assert!((r.ann_equivalent_energy_pj - 4.6 * 288.0).abs() < 1e-9);
    // Functional output: mean over T of the conv = the interpreter's.
    let exec = interp::run(&art.graph, &input).unwrap();
    assert!(bits(&sim.outputs[0]) == bits(&exec.outputs[0]));
    check_energy(r, &m, true);
}

#[test]
fn deployment_directories_are_deterministic() {
    let dir = common::fixtures()
        .into_iter()
        .find(|d| d.ends_with("spikerir-l3-d16"))
        .unwrap();
    let m = Machine::preset("ka200-like").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..2 {
        let art = artifact(&dir, Precision::F16);
        let dep = lynxi::compile(
            &art,
            &m,
            &Options {
                input_size: [48, 64],
                preset: "ka200-like".into(),
            },
        )
        .unwrap();
        dep.write_dir(&tmp.path().join(format!("d{i}"))).unwrap();
    }
    for f in ["manifest.json", "weights.bin", "routes.bin", "model.spk"] {
        let a = std::fs::read(tmp.path().join("d0").join(f)).unwrap();
        let b = std::fs::read(tmp.path().join("d1").join(f)).unwrap();
        assert!(a == b, "{f} differs between two compilations");
        assert!(!a.is_empty() || f == "routes.bin");
    }
    // Writing over a deployment replaces it; damage is detected on load.
    let d0 = tmp.path().join("d0");
    let mut w = std::fs::read(d0.join("weights.bin")).unwrap();
    w[0] ^= 1;
    std::fs::write(d0.join("weights.bin"), &w).unwrap();
    let e = load_dir(&d0).unwrap_err().to_string();
    assert!(e.contains("weights.bin is damaged"), "{e}");
}

#[test]
fn an_in_memory_deployment_simulates_exactly_like_the_same_one_saved_and_loaded() {
    let dir = common::fixtures()
        .into_iter()
        .find(|d| d.ends_with("spikerir-l3-d16"))
        .unwrap();
    let art = artifact(&dir, Precision::F16);
    let input = common::golden(&dir).input;
    let ka = Machine::preset("ka200-like").unwrap();
    let card = Machine::preset("tianjic-like").unwrap().with_chips(2);
    let runs = Schedule::ALL
        .into_iter()
        .map(|s| (&ka, s))
        .chain([(&card, Schedule::Auto)]);
    for (m, schedule) in runs {
        let dep = lynxi::compile_with(
            &art,
            m,
            &Options {
                input_size: size(&input),
                preset: m.name.clone(),
            },
            schedule,
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("deploy");
        dep.write_dir(&d).unwrap();
        let loaded = load_dir(&d).unwrap();
        let what = format!("{} {schedule} x{}", m.name, m.card.chips);
        // Every manifest field survives its JSON form, floats to the bit.
        assert!(loaded.manifest == dep.manifest, "{what}: the manifest changed through its JSON form");
        let memory = spikerc_targets::Loaded::from_deployment(&dep).unwrap();
        let a = simulate(&memory, &input, &SimOptions::default()).unwrap();
        let b = simulate(&loaded, &input, &SimOptions::default()).unwrap();
        assert_eq!(a.report.ops.packets, b.report.ops.packets, "{what}: packets");
        assert_eq!(a.report.energy_pj.to_bits(), b.report.energy_pj.to_bits(), "{what}: energy");
        assert!(a.report == b.report, "{what}: reports differ");
        assert!(bits(&a.outputs[0]) == bits(&b.outputs[0]), "{what}: outputs differ");
    }
}

#[test]
fn manifest_of_the_l3_fixture() {
    let dir = common::fixtures()
        .into_iter()
        .find(|d| d.ends_with("spikerir-l3-d16"))
        .unwrap();
    let art = artifact(&dir, Precision::F16);
    let m = Machine::preset("ka200-like").unwrap();
    // Layer-serial keeps every weight once (row bands of the streaming schedules repeat them).
    let dep = lynxi::compile_with(
        &art,
        &m,
        &Options {
            input_size: [48, 64],
            preset: "ka200-like".into(),
        },
        Schedule::LayerSerial,
    )
    .unwrap();
    let man = &dep.manifest;
    // Weights in the blob are the artifact's f16 weights, sliced by output channel.
    let total: u64 = man
        .cores
        .iter()
        .flat_map(|c| c.memory.iter())
        .filter(|r| r.sram == "weight")
        .map(|r| r.bytes)
        .sum();
    assert_eq!(
        total,
        man.slices.iter().map(|s| s.weight_bytes).sum::<u64>()
    );
    // Every module's weights are stored exactly once (the attention's shared MLP, used by its
    // average and max branches, once too), split by output channel or whole on a first slice.
    let mut params = std::collections::BTreeMap::new();
    for i in art.graph.ids() {
        let n = art.graph.node(i);
        for (role, t) in n.op.params() {
            params.insert((n.name.clone(), role), t.byte_len() as u64);
        }
    }
    assert_eq!(total, params.values().sum::<u64>());
    assert_eq!(
        dep.weights.len() as u64,
        man.cores
            .iter()
            .map(|c| c.weights_blob[1] - c.weights_blob[0])
            .sum::<u64>()
    );
    for c in &man.cores {
        assert!(
            c.weight_used <= m.core.weight_sram_bytes && c.state_used <= m.core.state_sram_bytes,
            "core {}",
            c.id
        );
        for r in c.memory.iter().filter(|r| r.sram == "state") {
            assert!(r.offset + r.bytes <= m.core.state_sram_bytes);
        }
    }
    // A compact view for the snapshot: model, summary, layers, edges, first cores.
    let view = serde_json::json!({
        "model": man.model,
        "summary": man.summary,
        "layers": man.layers.iter().map(|l| format!("{} [{}] C={} slices={} w={}", l.name, l.ops, l.channels, l.slices.len(), l.weight_bytes)).collect::<Vec<_>>(),
        "edges": man.edges.iter().map(|e| format!("{} -> {} {} {:?} {} B {}", e.from_layer.map(|l| man.layers[l].name.as_str()).unwrap_or("host"), e.to_layer.map(|l| man.layers[l].name.as_str()).unwrap_or("host"), e.kind, e.shape, e.bytes, e.staging)).collect::<Vec<_>>(),
        "core0": {
            "slices": man.cores[0].slices.len(),
            "weight_used": man.cores[0].weight_used,
            "state_used": man.cores[0].state_used,
            "memory_head": man.cores[0].memory.iter().take(8).map(|r| format!("{} @{} +{} {}", r.sram, r.offset, r.bytes, r.what)).collect::<Vec<_>>(),
            "memory_state": man.cores[0].memory.iter().filter(|r| r.sram == "state").take(8).map(|r| format!("@{} +{} {}", r.offset, r.bytes, r.what)).collect::<Vec<_>>(),
            "routes_head": man.cores[0].routes.iter().take(6).collect::<Vec<_>>(),
        },
        "slices_head": man.slices.iter().take(6).collect::<Vec<_>>(),
        "files": man.files,
    });
    insta::assert_json_snapshot!("l3_manifest", view);
}

fn tweak(field: &str, value: &str) -> Machine {
    let text = PRESETS[0].1;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with(&format!("{field} =")) {
            out.push_str(&format!("{field} = {value}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Machine::from_toml(&out, "tweaked.toml").unwrap()
}

#[test]
fn mapping_failures_name_the_module_the_limit_and_the_shortfall() {
    let dir = common::fixtures()
        .into_iter()
        .find(|d| d.ends_with("spikerir-l3-d16"))
        .unwrap();
    let art = artifact(&dir, Precision::F16);
    let opts = Options {
        input_size: [48, 64],
        preset: "tweaked.toml".into(),
    };
    let mut msgs = Vec::new();
    let err = |m: &Machine, o: &Options| lynxi::compile(&art, m, o).unwrap_err().to_string();
    msgs.push(err(&tweak("weight_sram_bytes", "1024"), &opts));
    let mut small = tweak("weight_sram_bytes", "16384");
    small.mesh.cols = 4;
    small.mesh.rows = 4;
    msgs.push(err(&small, &opts));
    msgs.push(err(&tweak("state_sram_bytes", "256"), &opts));
    let mut no_dram = tweak("bytes", "1048576");
    no_dram.core.state_sram_bytes = 8192;
    msgs.push(err(&no_dram, &opts));
    msgs.push(err(
        &Machine::preset("ka200-like").unwrap(),
        &Options {
            input_size: [0, 64],
            preset: "ka200-like".into(),
        },
    ));
    let bad = PRESETS[0]
        .1
        .replace("state_sram_bytes = 65536", "state_sram_bytes = \"64k\"");
    msgs.push(
        Machine::from_toml(&bad, "mine.toml")
            .unwrap_err()
            .to_string(),
    );
    let missing = PRESETS[0].1.replace("neuron_lanes = 32", "");
    msgs.push(
        Machine::from_toml(&missing, "mine.toml")
            .unwrap_err()
            .to_string(),
    );
    msgs.push(Machine::resolve("ka100").unwrap_err().to_string());
    insta::assert_snapshot!("mapping_failures", msgs.join("\n"));
}

/// A 4-level dim-24 configuration, one block per level (5.9 MiB of f16 weights; one
/// tianjic-like chip holds 4.9 MiB).
fn l4_d24() -> Artifact {
    use spikerc_models::spikerir::{random_checkpoint, Architecture};
    let arch = Architecture {
        dim: 24,
        levels: 4,
        en_blocks: vec![1; 4],
        de_blocks: vec![1; 4],
        in_channels: 3,
        out_channels: 3,
    };
    let hp = spikerc_models::HyperParams::default();
    let ckpt = random_checkpoint(&arch, &hp, 1).unwrap();
    spikerc_models::compile(&ckpt, &hp, Precision::F16, "l4-d24.safetensors").unwrap()
}

#[test]
fn a_model_too_big_for_one_chip_names_the_chip_count_and_runs_on_two_bit_exact() {
    let art = l4_d24();
    let one = Machine::preset("tianjic-like").unwrap();
    let opts = Options {
        input_size: [32, 32],
        preset: "tianjic-like".into(),
    };
    let err = lynxi::compile(&art, &one, &opts).unwrap_err().to_string();
    assert!(
        err.contains("of weights did not fit") && err.ends_with("the smallest card that fits has 2 chips: --chips 2"),
        "{err}"
    );
    let two = one.with_chips(2);
    assert!(two.is_assumed("card.link_bytes_per_cycle"));
    let mut px = Vec::new();
    for i in 0..3 * 32 * 32 {
        px.push(((i * 37) % 101) as f32 / 100.0);
    }
    let input = Array::new(vec![1, 3, 32, 32], px);
    let reference = Program::new(&art.graph)
        .run(&input, &RunOptions::default())
        .unwrap();
    for schedule in [Schedule::LayerSerial, Schedule::Auto] {
        let (sim, tmp) = deploy_and_simulate_with(&art, &two, &input, schedule);
        assert!(bits(&sim.outputs[0]) == bits(&reference.outputs[0]), "{schedule}");
        let r = &sim.report;
        assert_eq!(r.chips, 2);
        assert!(r.ops.chip_link_bytes > 0.0, "{schedule}: no chip-link traffic");
        assert!(r.energy_by_action["chip_link"] > 0.0);
        assert_eq!(r.chip_reports.len(), 2);
        assert!(r.chip_reports.iter().all(|c| c.cores_used > 0), "{:?}", r.chip_reports);
        check_energy(r, &two, true);
        // The manifest says which chip holds what.
        let man = load_dir(&tmp.path().join("deploy")).unwrap().manifest;
        let chips: std::collections::BTreeSet<usize> = man.layers.iter().map(|l| l.chip).collect();
        assert_eq!(chips.len(), 2);
        for s in &man.slices {
            assert_eq!(two.chip_of(s.core), man.layers[s.layer].chip);
        }
    }
}

#[test]
fn streaming_schedules_beat_layer_serial_and_stay_above_the_lower_bound() {
    let dir = common::fixtures()
        .into_iter()
        .find(|d| d.ends_with("spikerir-l4-d16"))
        .unwrap();
    let art = artifact(&dir, Precision::F16);
    let input = common::golden(&dir).input;
    let m = Machine::preset("ka200-like").unwrap();
    let run = |s| deploy_and_simulate_with(&art, &m, &input, s).0.report;
    let serial = run(Schedule::LayerSerial);
    let auto = run(Schedule::Auto);
    assert!(auto.latency_cycles < serial.latency_cycles, "{} vs {}", auto.latency_cycles, serial.latency_cycles);
    assert!(auto.energy_pj < serial.energy_pj);
    for r in [&serial, &auto] {
        let lb = &r.lower_bound;
        assert!(lb.latency_cycles > 0.0 && lb.latency_cycles <= r.latency_cycles as f64);
        assert!(lb.energy_pj <= r.energy_pj && lb.latency_ratio >= 1.0 && lb.energy_ratio >= 1.0);
        assert_eq!(r.step_cycles.len(), r.time_steps);
    }
    // auto says what it chose and why, per stage; full-T stages are the attention layers
    // and the reductions over time.
    assert!(auto.stages.iter().any(|s| s.mode == "full-t" && s.first_layer.ends_with(".attn")));
    assert!(auto.stages.iter().all(|s| !s.reason.is_empty()));
    assert!(auto.layers.iter().any(|l| l.dataflow.as_deref().is_some_and(|d| d.starts_with("output-stationary"))));
    assert!(auto.hops_per_spike > 0.0);
    // The placement minimises the byte-hops of all on-chip traffic, starting from the
    // serpentine walk: never worse than the walk on that objective.
    for r in [&serial, &auto] {
        assert!(r.hops_per_byte_placed_estimate > 0.0);
        assert!(
            r.hops_per_byte_placed_estimate <= r.hops_per_byte_serpentine_estimate,
            "{} vs {}",
            r.hops_per_byte_placed_estimate,
            r.hops_per_byte_serpentine_estimate
        );
    }
    assert!(auto.hops_per_spike_placed_estimate > 0.0 && auto.hops_per_spike_serpentine_estimate > 0.0);
}

#[test]
fn machine_descriptions_are_bounded_before_use() {
    let text = PRESETS[0].1;
    let huge = text
        .replace("cols = 16 ", "cols = 100000 ")
        .replace("rows = 12", "rows = 100000");
    let e = Machine::from_toml(&huge, "big.toml").unwrap_err().to_string();
    assert_eq!(e, "big.toml: mesh.cols must be at most 1024, found 100000");
    let e = Machine::from_toml(&text.replace("mhz = 1000.0", "mhz = 1000000.0"), "m.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "m.toml: clock.mhz must be at most 100000, found 1000000");
    let card = format!("{text}\n[card]\nchips = 3\n");
    let e = Machine::from_toml(&card, "c.toml").unwrap_err().to_string();
    assert_eq!(e, "c.toml: card.link_bytes_per_cycle must be positive on a card of 3 chips, found 0");
    let hp = Machine::preset("hp300-like").unwrap();
    assert_eq!(hp.card.chips, 4);
    assert!(hp.is_assumed("card.chips"));
}

#[test]
fn a_hand_edited_manifest_is_an_error_not_a_panic() {
    let dir = common::fixtures()
        .into_iter()
        .find(|d| d.ends_with("spikerir-l3-d16"))
        .unwrap();
    let art = artifact(&dir, Precision::F16);
    let m = Machine::preset("ka200-like").unwrap();
    let dep = lynxi::compile(
        &art,
        &m,
        &Options {
            input_size: [48, 64],
            preset: "ka200-like".into(),
        },
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("dep");
    let edit = |from: &str, to: &str| -> String {
        dep.write_dir(&d).unwrap();
        let text = std::fs::read_to_string(d.join("manifest.json")).unwrap();
        assert!(text.contains(from), "{from}");
        std::fs::write(d.join("manifest.json"), text.replacen(from, to, 1)).unwrap();
        load_dir(&d).unwrap_err().to_string()
    };
    let core = format!("\"core\": {}", dep.manifest.slices[0].core);
    let e = edit(&core, "\"core\": 99999");
    assert!(e.ends_with("slices[0].core is 99999, must be below 192"), "{e}");
    let e = edit("\"cols\": 16", "\"cols\": 100000");
    assert!(e.contains("mesh.cols must be at most 1024, found 100000"), "{e}");
    let layer0 = format!("\"layer\": {}", dep.manifest.slices[0].layer);
    let e = edit(&layer0, "\"layer\": 4000");
    assert!(e.ends_with("slices[0].layer is 4000, must be below 83"), "{e}");
}
