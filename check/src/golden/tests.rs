//! `golden check`'s localisation of a failing case gives the verdict `verify` gives on the
//! same checkpoint, input, precision and engine (regression: it once called the unchanged l3
//! fixture a mismatch while `verify` passed it).

use super::*;
use crate::verify::{self, Verdict};

fn fixture() -> PathBuf {
    let shared = std::env::var_os("SPIKERC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("fixtures/spikerir-l3-d16")
}

fn read(p: &Path) -> anyhow::Result<Array> {
    Ok(spikerc_models::input::read_input(p)?.0)
}

#[test]
fn a_failing_case_is_localised_with_the_verdict_verify_gives() {
    let fx = fixture();
    let tmp = std::env::temp_dir().join(format!("spikerc-golden-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let suite = tmp.join("suite.toml");
    let mut text = String::new();
    for (engine, precision) in [("event", "f32"), ("interp", "f32"), ("event", "f16")] {
        text += &format!(
            "[[case]]\nname = \"{engine}-{precision}\"\nengine = \"{engine}\"\nprecision = \"{precision}\"\ncheckpoint = \"{0}/model.safetensors\"\nconfig = \"{0}/meta.json\"\ninput = \"{0}/golden.safetensors\"\n\n",
            fx.display()
        );
    }
    std::fs::write(&suite, text).unwrap();
    let (golden_path, recorded, n) = record(&suite, &read, &mut |_| {}).unwrap();
    assert_eq!(n, 3);
    // Every case fails on purpose: its recorded output hash is wrong.
    let mut g: GoldenFile = toml::from_str(&recorded).unwrap();
    for r in g.cases.values_mut() {
        r.output.sha256 = "0".repeat(64);
    }
    std::fs::write(&golden_path, toml::to_string(&g).unwrap()).unwrap();
    let mut lines = Vec::new();
    let err = check(&suite, None, &read, &mut |l| lines.push(l.to_string())).unwrap_err();
    assert!(err.to_string().contains("3 of 3 case(s)"), "{err}");
    let ckpt = Checkpoint::load(&fx.join("model.safetensors")).unwrap();
    let hp = HyperParams::from_file(&fx.join("meta.json")).unwrap();
    let input = read(&fx.join("golden.safetensors")).unwrap();
    let reference = Torch::new(&ckpt, &hp).unwrap();
    for (engine, precision) in [(EngineKind::Event, Precision::F32), (EngineKind::Interp, Precision::F32), (EngineKind::Event, Precision::F16)] {
        let name = format!("{engine}-{precision}");
        let art = spikerc_models::compile(&ckpt, &hp, precision, "model.safetensors").unwrap();
        let opts = verify::Options { engine, wide: false, layerwise: true, tolerances: crate::compare::Tolerances::default_for(precision) };
        let v = verify::verify(&reference, &art, &input, &opts).unwrap();
        if precision == Precision::F32 {
            assert_eq!(v.verdict, Verdict::Pass, "{name}: the fixture is spike-exact\n{}", verify::explain(&v));
        }
        let case: Vec<&String> = lines.iter().skip_while(|l| !l.starts_with(&format!("FAIL {name}:"))).skip(1).take_while(|l| !l.starts_with("FAIL")).collect();
        let said = case.iter().find(|l| l.contains("artifact vs libtorch of the current checkpoint")).unwrap_or_else(|| panic!("{name}: no localisation in\n{}", lines.join("\n")));
        assert!(said.contains(&format!("verdict {} ", v.verdict.name())), "{name}: golden says `{said}`, verify says {}\n{}", v.verdict.name(), lines.join("\n"));
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
