//! The libtorch engine for [`super::evaluate`]: a checkpoint run by the dense reference
//! executor ([`crate::torch::SpikerIr`], eval mode, f32), on the GPU when libtorch sees one.

use spikerc_compiler::interp::Array;
use std::path::Path;
use tch::{Device, Kind, Tensor};

use crate::torch::SpikerIr;
use crate::{HyperParams, ImportError};

/// A loaded checkpoint ready to restore images.
pub struct TorchModel {
    net: SpikerIr,
    _vs: tch::nn::VarStore,
    device: Device,
}

impl TorchModel {
    pub fn load(path: &Path, hp: &HyperParams) -> Result<TorchModel, ImportError> {
        let device = Device::cuda_if_available();
        let (vs, net) = SpikerIr::load(path, hp, device)?;
        Ok(TorchModel {
            net,
            _vs: vs,
            device,
        })
    }

    /// Height and width must be multiples of this.
    pub fn spatial_divisor(&self) -> usize {
        self.net.spatial_divisor() as usize
    }

    /// Restores a `[N, 3, H, W]` batch.
    pub fn restore(&self, x: &Array) -> Result<Array, String> {
        let shape: Vec<i64> = x.shape.iter().map(|&d| d as i64).collect();
        let t = Tensor::from_slice(&x.data)
            .view(shape.as_slice())
            .to_device(self.device);
        self.net.check_input(&t)?;
        let y = tch::no_grad(|| self.net.forward_t(&t, false));
        let out_shape: Vec<usize> = y.size().iter().map(|&d| d as usize).collect();
        let flat = y
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]);
        let data = Vec::<f32>::try_from(&flat).map_err(|e| e.to_string())?;
        Ok(Array::new(out_shape, data))
    }
}
