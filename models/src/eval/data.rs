//! Restoration test sets on disk: image loading and input/target pairing.
//!
//! * Denoising: a folder of clean images (PNG/JPEG/BMP/TIFF, sorted by file name); the noisy
//!   input is synthesised (see [`super::noise`]).
//! * Deraining / dehazing: a folder with `input/` and `target/` subfolders. An input pairs with
//!   the target of the same file name (RESIDE SOTS: `1400_1.png` <-> `1400_1.png`), otherwise with
//!   the target whose name is the same after dropping each name's leading non-digit prefix
//!   (Rain12 / Rain100L: `rain-001.png` <-> `norain-001.png`). Every input must pair with
//!   exactly one target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::EvalError;

/// An 8-bit RGB image as planar f32 `[3, h, w]` holding the 0–255 integer values.
#[derive(Clone, Debug, PartialEq)]
pub struct Rgb8 {
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Rgb8 {
    /// The image scaled to `[0, 1]` (value / 255), planar `[3, h, w]`.
    pub fn to_unit(&self) -> Vec<f32> {
        self.data.iter().map(|&v| v / 255.0).collect()
    }
}

/// Loads an image file as 8-bit RGB. Images that are not 3-channel RGB (grey, RGBA) are
/// refused with the channel count, since the models are trained on RGB.
pub fn load_rgb8(path: &Path) -> Result<Rgb8, EvalError> {
    let p = path.display().to_string();
    let img = image::ImageReader::open(path)
        .map_err(|e| EvalError::Io {
            path: p.clone(),
            reason: e.to_string(),
        })?
        .with_guessed_format()
        .map_err(|e| EvalError::Io {
            path: p.clone(),
            reason: e.to_string(),
        })?
        .decode()
        .map_err(|e| EvalError::Image {
            path: p.clone(),
            reason: e.to_string(),
        })?;
    let channels = img.color().channel_count();
    if channels != 3 {
        return Err(EvalError::Channels {
            path: p,
            channels: channels.into(),
            color: format!("{:?}", img.color()),
        });
    }
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut data = vec![0f32; 3 * h * w];
    for (x, y, px) in rgb.enumerate_pixels() {
        for c in 0..3 {
            data[c * h * w + y as usize * w + x as usize] = px[c] as f32;
        }
    }
    Ok(Rgb8 { h, w, data })
}

fn is_image(p: &Path) -> bool {
    p.is_file()
        && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            matches!(
                e.to_ascii_lowercase().as_str(),
                "png" | "jpg" | "jpeg" | "bmp" | "tif" | "tiff" | "webp"
            )
        })
}

/// The image files of a folder, sorted by file name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let rd = std::fs::read_dir(dir).map_err(|e| EvalError::Io {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_image(p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EvalError::NoImages {
            dir: dir.display().to_string(),
        });
    }
    Ok(files)
}

/// One evaluation case: an input file and its ground truth (the same file for denoising).
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub name: String,
    pub input: PathBuf,
    pub target: PathBuf,
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The name with its leading non-digit prefix dropped (`norain-001.png` -> `001.png`).
fn pairing_key(name: &str) -> &str {
    name.trim_start_matches(|c: char| !c.is_ascii_digit())
}

/// Pairs `dir/input/*` with `dir/target/*` (rules in the module docs).
pub fn pair_dir(dir: &Path) -> Result<Vec<Pair>, EvalError> {
    let (ind, tgd) = (dir.join("input"), dir.join("target"));
    for d in [&ind, &tgd] {
        if !d.is_dir() {
            return Err(EvalError::Layout {
                dir: dir.display().to_string(),
                reason: format!(
                    "no `{}` folder (pairs need `input/` and `target/`)",
                    file_name(d)
                ),
            });
        }
    }
    let inputs = list_images(&ind)?;
    let targets = list_images(&tgd)?;
    let by_name: BTreeMap<String, &PathBuf> = targets.iter().map(|t| (file_name(t), t)).collect();
    let mut by_key: BTreeMap<String, Vec<&PathBuf>> = BTreeMap::new();
    for t in &targets {
        by_key
            .entry(pairing_key(&file_name(t)).to_string())
            .or_default()
            .push(t);
    }
    let mut pairs = Vec::with_capacity(inputs.len());
    for i in &inputs {
        let name = file_name(i);
        let target = match by_name.get(&name) {
            Some(t) => (*t).clone(),
            None => match by_key.get(pairing_key(&name)).map(Vec::as_slice) {
                Some([t]) => (*t).clone(),
                Some(many) => {
                    return Err(EvalError::Pairing {
                        input: i.display().to_string(),
                        reason: format!("{} targets match", many.len()),
                    })
                }
                None => {
                    return Err(EvalError::Pairing {
                        input: i.display().to_string(),
                        reason: "no target matches".into(),
                    })
                }
            },
        };
        pairs.push(Pair {
            name,
            input: i.clone(),
            target,
        });
    }
    Ok(pairs)
}

/// Denoising cases: every image of `dir` is its own target.
pub fn clean_dir(dir: &Path) -> Result<Vec<Pair>, EvalError> {
    Ok(list_images(dir)?
        .into_iter()
        .map(|p| Pair {
            name: file_name(&p),
            input: p.clone(),
            target: p,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch_png(p: &Path) {
        image::RgbImage::from_pixel(4, 3, image::Rgb([10, 20, 30]))
            .save(p)
            .unwrap();
    }

    #[test]
    fn pairs_by_name_and_by_numeric_key() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("input")).unwrap();
        std::fs::create_dir_all(d.path().join("target")).unwrap();
        for n in ["rain-001.png", "rain-002.png", "1400_1.png"] {
            touch_png(&d.path().join("input").join(n));
        }
        for n in ["norain-001.png", "norain-002.png", "1400_1.png"] {
            touch_png(&d.path().join("target").join(n));
        }
        let pairs = pair_dir(d.path()).unwrap();
        let got: Vec<(String, String)> = pairs
            .iter()
            .map(|p| (p.name.clone(), file_name(&p.target)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("1400_1.png".into(), "1400_1.png".into()),
                ("rain-001.png".into(), "norain-001.png".into()),
                ("rain-002.png".into(), "norain-002.png".into())
            ]
        );
        let img = load_rgb8(&pairs[0].input).unwrap();
        assert_eq!((img.h, img.w), (3, 4));
        assert_eq!(&img.data[..2], &[10.0, 10.0]);
        assert_eq!(img.data[12], 20.0);
    }

    #[test]
    fn unpaired_input_and_missing_folder_are_errors() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("input")).unwrap();
        assert!(matches!(pair_dir(d.path()), Err(EvalError::Layout { .. })));
        std::fs::create_dir_all(d.path().join("target")).unwrap();
        touch_png(&d.path().join("input").join("rain-009.png"));
        touch_png(&d.path().join("target").join("norain-001.png"));
        let e = pair_dir(d.path()).unwrap_err();
        assert!(
            e.to_string().contains("rain-009.png") && e.to_string().contains("no target"),
            "{e}"
        );
    }

    #[test]
    fn grey_images_are_refused_with_the_channel_count() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("g.png");
        image::GrayImage::new(5, 5).save(&p).unwrap();
        let e = load_rgb8(&p).unwrap_err();
        assert!(e.to_string().contains("1 channel"), "{e}");
    }
}
