"""simgan_tf: SimGAN (Shrivastava et al., CVPR 2017) in Keras 3 / TensorFlow."""

__version__ = "0.1.0"
