"""Eye-image data sets: reading, checking, converting and streaming them to the training step."""

from __future__ import annotations

# A copy of the threshold, for reading: to change it, set simgan_tf.data.cache.CACHE_MIN_IMAGES.
from simgan_tf.data.cache import CACHE_MIN_IMAGES, cache_path
from simgan_tf.data.cache import _cache_key as _cache_key
from simgan_tf.data.cli import main
from simgan_tf.data.convert import (
    ConvertReport,
    convert_mpiigaze,
    convert_unityeyes,
    crop_unityeyes,
    read_mpiigaze_mat,
)
from simgan_tf.data.convert import _resize_stack as _resize_stack
from simgan_tf.data.eyeset import IMAGE_SHAPE, EyeSet, gaze_angles, mpiigaze_to_look_vec
from simgan_tf.data.hdf5 import save_eyes
from simgan_tf.data.inspection import describe, write_montage
from simgan_tf.data.kaggle import KAGGLE_DATASET, KAGGLE_FILES, download
from simgan_tf.data.load import load_eyes, load_groups, require_column
from simgan_tf.data.mirror import mirror
from simgan_tf.data.pipeline import image_stream, to_gray_levels, to_model_range, training_dataset
from simgan_tf.data.rows import SplitPart, match_rows, split_by_group, subset
from simgan_tf.errors import SimGANError

__all__ = [
    "CACHE_MIN_IMAGES",
    "IMAGE_SHAPE",
    "KAGGLE_DATASET",
    "KAGGLE_FILES",
    "ConvertReport",
    "EyeSet",
    "SimGANError",
    "SplitPart",
    "cache_path",
    "convert_mpiigaze",
    "convert_unityeyes",
    "crop_unityeyes",
    "describe",
    "download",
    "gaze_angles",
    "image_stream",
    "load_eyes",
    "load_groups",
    "main",
    "match_rows",
    "mirror",
    "mpiigaze_to_look_vec",
    "read_mpiigaze_mat",
    "require_column",
    "save_eyes",
    "split_by_group",
    "subset",
    "to_gray_levels",
    "to_model_range",
    "training_dataset",
    "write_montage",
]
