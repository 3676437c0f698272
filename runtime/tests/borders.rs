//! Hand-checkable graphs: AC counts at image borders, stride-2 reach, BatchNorm/unfused ops,
//! tiling and padding, all against the reference interpreter.

use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::ir::{BatchNorm, Conv2d, ConvAlgorithm, Lif, Reset};
use spikerc_compiler::{Graph, Op, Tensor, Verified};
use spikerc_runtime::{tile, Isa, Program, RunOptions};

const T: usize = 2;

/// input -> repeat T -> LIF (threshold 0.5, fires where the input is 1) -> conv (event-driven)
/// [-> mean over T] -> output; co output channels, weights i-th = i * 0.25.
fn spike_conv_graph(co: usize, k: usize, stride: usize, pad: usize, mean_time: bool) -> Verified {
    let mut g = Graph::new();
    let x = g.add("input", Op::Input { channels: 1 }, &[]).unwrap();
    let r = g.add("encode", Op::RepeatTime { steps: T }, &[x]).unwrap();
    let lif = Lif {
        tau: 2.0,
        v_threshold: 0.4,
        reset: Reset::Hard { v_reset: 0.0 },
        decay_input: true,
    };
    let s = g.add("lif", Op::Lif(lif), &[r]).unwrap();
    let w: Vec<f32> = (0..co * k * k)
        .map(|i| 0.25 * (i % 7) as f32 - 0.5)
        .collect();
    let conv = Conv2d {
        weight: Tensor::from_f32(vec![co, 1, k, k], w),
        bias: Some(Tensor::from_f32(vec![co], vec![0.125; co])),
        stride: [stride, stride],
        padding: [pad, pad],
        event_driven: true,
        algorithm: Default::default(),
    };
    let c = g.add("conv", Op::Conv2d(conv), &[s]).unwrap();
    let c = if mean_time {
        g.add("mean_time", Op::MeanTime, &[c]).unwrap()
    } else {
        c
    };
    g.add("output", Op::Output, &[c]).unwrap();
    Verified::new(g).unwrap()
}

/// A 1x1x8x8 image with ones at the given pixels.
fn image(ones: &[(usize, usize)]) -> Array {
    let mut a = Array::zeros(vec![1, 1, 8, 8]);
    for &(y, x) in ones {
        a.data[y * 8 + x] = 1.0;
    }
    a
}

fn opts() -> RunOptions {
    RunOptions {
        threads: 1,
        profile: false,
    }
}

#[test]
fn a_corner_spike_reaches_four_outputs_an_edge_spike_six_an_inner_spike_nine() {
    let g = spike_conv_graph(3, 3, 1, 1, false);
    let p = Program::new(&g);
    // decay_input, tau 2: H = 0.5 at t=0 -> fires, resets; fires again at t=1: 2 spikes each.
    for (ones, reach) in [
        (vec![(0, 0)], 4),
        (vec![(0, 4)], 6),
        (vec![(3, 3)], 9),
        (vec![(7, 7), (0, 0)], 8),
    ] {
        let r = p.run(&image(&ones), &opts()).unwrap();
        let c = r.ops["conv"];
        let spikes = (ones.len() * T) as u64;
        assert_eq!(r.spikes["lif"], spikes);
        assert_eq!(c.spikes_in, spikes);
        assert_eq!(c.ac, spikes / ones.len() as u64 * reach * 3, "{ones:?}");
        assert_eq!(c.mac, 0);
        let ex = interp::run(&g, &image(&ones)).unwrap();
        assert_eq!(r.outputs, ex.outputs);
    }
}

#[test]
fn stride_two_spikes_reach_only_the_outputs_whose_window_covers_them() {
    // k3 s2 p1 on 8x8 -> 4x4: input column 0 is covered by output column 0 (kx=1) only; column 1
    // by output 0 (kx=2) and 1 (kx=0).
    let g = spike_conv_graph(2, 3, 2, 1, false);
    let p = Program::new(&g);
    for (ones, reach) in [((0, 0), 1), ((1, 1), 4), ((0, 1), 2), ((7, 7), 1)] {
        let r = p.run(&image(&[ones]), &opts()).unwrap();
        assert_eq!(r.ops["conv"].ac, (T * reach * 2) as u64, "{ones:?}");
        assert_eq!(r.outputs, interp::run(&g, &image(&[ones])).unwrap().outputs);
    }
}

#[test]
fn unfolded_batch_norm_and_real_convs_match_the_interpreter() {
    let mut g = Graph::new();
    let x = g.add("input", Op::Input { channels: 2 }, &[]).unwrap();
    let conv = Conv2d {
        weight: Tensor::from_f32(
            vec![5, 2, 3, 3],
            (0..90)
                .map(|i| ((i * 37 % 17) as f32 - 8.0) / 9.0)
                .collect(),
        ),
        bias: None,
        stride: [1, 1],
        padding: [1, 1],
        event_driven: false,
        algorithm: Default::default(),
    };
    let c = g.add("embed", Op::Conv2d(conv), &[x]).unwrap();
    let bn = BatchNorm {
        gamma: Tensor::from_f32(vec![5], vec![0.3, 0.2, 0.1, 0.4, 0.25]),
        beta: Tensor::from_f32(vec![5], vec![0.01, -0.02, 0.0, 0.05, 0.1]),
        running_mean: Tensor::from_f32(vec![5], vec![0.1; 5]),
        running_var: Tensor::from_f32(vec![5], vec![0.7; 5]),
        eps: 1e-5,
    };
    let b = g.add("bn", Op::BatchNorm(bn), &[c]).unwrap();
    g.add("output", Op::Output, &[b]).unwrap();
    let g = Verified::new(g).unwrap();
    let input = Array::new(
        vec![2, 2, 5, 7],
        (0..140).map(|i| ((i * 13 % 29) as f32) / 29.0).collect(),
    );
    let r = Program::new(&g).run(&input, &opts()).unwrap();
    assert_eq!(r.outputs, interp::run(&g, &input).unwrap().outputs);
    assert_eq!(r.ops["embed"].mac, (2 * 5 * 5 * 7 * 2 * 9) as u64);
}

#[test]
fn tiles_with_enough_overlap_reproduce_the_whole_image_and_odd_sizes_are_padded() {
    let g = spike_conv_graph(4, 3, 1, 1, true);
    let p = Program::new(&g);
    let input = Array::new(
        vec![1, 1, 13, 11],
        (0..143).map(|i| ((i * 7 % 5) == 0) as u8 as f32).collect(),
    );
    let whole = tile::run_image(&p, &input, &opts()).unwrap();
    assert_eq!(whole.outputs[0].shape, vec![1, 4, 13, 11]);
    // The receptive field is one pixel, so an overlap of 1 makes tiles exact.
    let tiled = tile::run_tiled(&p, &input, 4, 1, &opts()).unwrap();
    assert_eq!(tiled.outputs, whole.outputs);
    assert!(
        tiled.ops["conv"].ac > whole.ops["conv"].ac,
        "overlap work is counted"
    );
    assert!(tile::run_tiled(&p, &input, 0, 1, &opts()).is_err());
}

/// input(ci) -> conv 3x3 ci -> co (Winograd F(2x2,3x3), optional bias) -> output.
fn winograd_graph(ci: usize, co: usize, bias: bool) -> Verified {
    let mut g = Graph::new();
    let x = g.add("input", Op::Input { channels: ci }, &[]).unwrap();
    let conv = Conv2d {
        weight: Tensor::from_f32(
            vec![co, ci, 3, 3],
            (0..co * ci * 9)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 17.0)
                .collect(),
        ),
        bias: bias
            .then(|| Tensor::from_f32(vec![co], (0..co).map(|o| o as f32 * 0.01 - 0.1).collect())),
        stride: [1, 1],
        padding: [1, 1],
        event_driven: false,
        algorithm: ConvAlgorithm::Winograd2x2,
    };
    let c = g.add("conv", Op::Conv2d(conv), &[x]).unwrap();
    g.add("output", Op::Output, &[c]).unwrap();
    Verified::new(g).unwrap()
}

#[test]
fn winograd_convs_match_the_interpreter_at_every_size_and_level() {
    // Odd and even sizes, single rows/columns, widths past one 16-column block and one task
    // chunk, channel counts across a 16-lane boundary; signed inputs (zeros of both signs).
    for (ci, co, bias, h, w) in [
        (3, 5, false, 5, 7),
        (16, 16, true, 1, 1),
        (16, 20, true, 2, 3),
        (17, 33, false, 9, 40),
        (24, 48, true, 6, 75),
        (8, 16, true, 3, 300),
        (96, 96, true, 3, 201),
    ] {
        let g = winograd_graph(ci, co, bias);
        let n = 2 * ci * h * w;
        let input = Array::new(
            vec![2, ci, h, w],
            (0..n)
                .map(|i| match i % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => ((i * 13 % 29) as f32 - 14.0) / 7.0,
                })
                .collect(),
        );
        let want = interp::run(&g, &input).unwrap().outputs;
        for level in [Isa::Avx512, Isa::Avx2, Isa::Baseline] {
            for threads in [1, 2] {
                let r = Program::with_level(&g, level)
                    .run(
                        &input,
                        &RunOptions {
                            threads,
                            profile: false,
                        },
                    )
                    .unwrap();
                let bits = |a: &[Array]| a[0].data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&r.outputs),
                    bits(&want),
                    "{ci}->{co} {h}x{w} {level:?} {threads}"
                );
                assert_eq!(r.ops["conv"].mac, (2 * co * h * w * ci * 9) as u64);
            }
        }
    }
}
