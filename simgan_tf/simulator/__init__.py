"""The built-in eye simulator: a procedural renderer of 35 x 55 grayscale eye patches with exact gaze labels.

It stands in for UnityEyes (the paper's simulator, a Unity application). Each image is one scene: an
eyeball (a sphere) whose iris and pupil turn with the gaze, upper and lower eyelids that follow the gaze,
eye corners with a caruncle, eyelashes, a lid crease, skin, sclera and iris shaded under one light, and a
corneal glint. A scene is drawn from a profile (profiles, scenes), laid out per pixel (geometry), shaded
(appearance) and, for the "target" domain, imaged by another camera (camera); rendering draws them in
seeded blocks and cache keeps simulated sets on disk. look_vec's convention: look_vec.
"""

from simgan_tf.photometry import equalize
from simgan_tf.simulator.appearance import _draw as _draw
from simgan_tf.simulator.cache import default_path, ensure_simulated, source_names
from simgan_tf.simulator.camera import _gauss_matrices as _gauss_matrices
from simgan_tf.simulator.camera import _interp_matrix as _interp_matrix
from simgan_tf.simulator.look_vec import look_vec_to_pitch_yaw, pitch_yaw_to_look_vec
from simgan_tf.simulator.profiles import (
    DEFAULT_PROFILE,
    INNER_LEFT,
    PROFILES,
    SceneProfile,
    get_profile,
)
from simgan_tf.simulator.rendering import DOMAINS, render, render_blocks, scene_parameters
from simgan_tf.simulator.scenes import CHUNK, H, W, sample_scenes

# Also here, private: _draw (for the tests), _gauss_matrices and _interp_matrix (simgan_tf.augment).
__all__ = [
    "CHUNK",
    "DEFAULT_PROFILE",
    "DOMAINS",
    "H",
    "INNER_LEFT",
    "PROFILES",
    "W",
    "SceneProfile",
    "default_path",
    "ensure_simulated",
    "equalize",
    "get_profile",
    "look_vec_to_pitch_yaw",
    "pitch_yaw_to_look_vec",
    "render",
    "render_blocks",
    "sample_scenes",
    "scene_parameters",
    "source_names",
]
