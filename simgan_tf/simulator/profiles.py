"""The scene distributions: every scene parameter's range, SceneProfile and the named PROFILES.

Scenes are drawn from a named profile (PROFILES; `render(..., profile=...)`): "uniform" (the default,
and the only distribution before profiles existed: its images are unchanged) has gaze pitch and yaw
uniform in +-30 degrees (UnityEyes' default eye-rotation range) and a frontal head; "columbia" and
"mpiigaze" draw the gaze and head pose of those real sets, and an eye geometry (size, placement, iris
size and darkness, lid heights and how the lids follow the gaze) calibrated against their images with
simgan_tf.eyestats; "columbia_follow" is "columbia" with the crop following the gaze and lids that open
looking up (its renders teach an estimator more of real eyes' gaze; "columbia" stays the real-eye
recipe's). Per image the simulator varies eye size, place and in-plane rotation, canthal tilt,
which side the inner corner is on, eye opening, lid shapes, iris size, texture and shade, pupil size,
sclera and skin tone, the light's direction and the glint.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from simgan_tf.errors import SimGANError

# Share of eyes with the inner corner (caruncle) on the image's left; most of the real set's are.
INNER_LEFT = 0.8

# Every scene parameter drawn uniformly in [low, high], in the order drawn (uniform's images depend on
# it); lengths marked R are in eyeball radii. Profiles override some of the ranges.
_RANGES: dict[str, tuple[float, float]] = {
    "pitch": (-30.0, 30.0),  # deg, gaze; the head is never pitched, so camera and head frames agree
    "yaw": (-30.0, 30.0),  # deg, gaze relative to the head; the camera sees yaw - head_yaw
    "light_x": (-0.7, 0.7),  # the light's direction before normalising (z = 1): toward the right
    "light_y": (0.0, 0.8),  # and up: mostly from above, so the glint sits above the pupil
    "radius": (16.5, 19.0),  # px, of the eyeball, before a corner crop's zoom
    "cx": (-2.0, 2.0),  # px around the profile's centre: the eye region's centre in the patch
    "cy": (-1.5, 1.5),
    "roll": (-7.0, 7.0),  # deg
    "tilt": (3.0, 11.0),  # deg, outer corner higher than the inner one
    "half_width": (1.28, 1.42),  # R; corner to corner about 48 px, as in MPIIGaze
    "open": (0.75, 1.15),
    "upper_pow": (0.45, 0.7),
    "lower_pow": (0.45, 0.75),
    "upper_skew": (-0.15, 0.15),
    "lower_skew": (-0.15, 0.15),
    "iris": (0.46, 0.52),  # R; MPIIGaze's iris is about 17 px across
    "pupil": (0.3, 0.55),  # share of the iris radius
    "iris_shade": (0.04, 0.25),
    "pupil_shade": (0.0, 0.04),
    "sclera": (0.6, 0.9),
    "skin": (0.7, 0.98),
    "skin_slope": (-0.25, 0.1),  # mostly lit from below: the cheek
    "crease_gap": (0.18, 0.42),  # R above the upper lid at rest
    "crease_dark": (0.05, 0.3),
    "brow_dark": (0.0, 0.35),
    "bag_dark": (0.0, 0.3),
    "socket": (0.1, 0.4),
    "lash": (0.7, 1.0),
    "lash_width": (1.5, 3.2),  # px
    "lower_lash": (0.2, 0.6),
    "lid_shadow": (0.2, 0.6),
    "caruncle": (0.3, 0.6),
    "caruncle_end": (-0.86, -0.74),
    "glint": (0.3, 1.0),  # strength, where there is one
    "ambient": (0.35, 0.6),
    # Drawn last, so that profiles without head pose keep the first streams' numbers.
    # deg, the eye region turned about the vertical: + toward the image's left.
    "head_yaw": (0.0, 0.0),
    "corner_depth": (0.35, 0.55),  # R the corners and lids lie in front of the eyeball's centre
    # R the eyeball sits toward the outer corner from the corners' midpoint.
    "ball_offset": (0.0, 0.0),
    # Lid margins for a level gaze, R above and below the centre, and how far they rise per unit
    # sin(pitch); all times `open`.
    "upper_rest": (0.42, 0.42),
    "upper_follow": (0.68, 0.68),
    "lower_rest": (0.5, 0.5),
    "lower_follow": (0.3, 0.3),
    # How far the lids' peaks follow the cornea sideways, per unit sin(yaw relative to the head).
    "upper_bulge": (0.3, 0.3),
    "lower_bulge": (0.2, 0.2),
    # R the eyeball's centre lies above the corners' line (the lids' frame); the lid margins' rests
    # are measured from that line.
    "ball_rise": (0.0, 0.0),
    # How much the lower lid's shape exponent (lower_pow) falls per unit sin(pitch): looking up the
    # lid grows flatter, its two sides lower, looking down more arched; under the iris it stays.
    # Real Columbia eyes do this. With 5 in columbia an estimator trained on the renders read more of
    # real eyes' pitch (0.26, r 0.44, against 0.21, r 0.36) and erred 0.16 deg less over three sets
    # of test people, but the real-eye recipe's refined arm erred 0.32 deg more on every training
    # seed (docs/RESULTS.md, "The recipe on the new renders"): off in every profile.
    "lower_pow_follow": (0.0, 0.0),
}


@dataclass(frozen=True)
class SceneProfile:
    """A named scene distribution: the gaze and head pose drawn, and where and how big the eye is.

    ranges: overrides of _RANGES (degrees for angles). centre: where the eye region's centre sits in
    the patch, px (x, y); with a `ball_rise`, y is the eyeball's centre and the corners lie lower.
    corner_crop: the patch is cut around the eye corners (as Columbia Gaze's are), so a turned head's
    eye keeps its width in the image and the eyeball looks bigger, by 1 / cos(head_yaw); otherwise
    (MPIIGaze's normalisation, a fixed camera distance) it foreshortens.
    crop_follow: px the whole eye region (eyeball, lids, skin) sits lower in the patch per degree of
    upward gaze pitch, as where each crop was cut around an eye that moves with the gaze. The eyeball
    is drawn at exactly the gaze its label gives; only the crop's place in the face moves.
    """

    description: str
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    centre: tuple[float, float] = (26.5, 16.5)
    inner_left: float = INNER_LEFT
    glint_share: float = 0.75
    corner_crop: bool = False
    crop_follow: float = 0.0


PROFILES: dict[str, SceneProfile] = {
    "uniform": SceneProfile(
        "gaze pitch and yaw uniform in +-30 deg (UnityEyes' default range), frontal head"
    ),
}
PROFILES["columbia"] = SceneProfile(
    "Columbia Gaze: gaze pitch -10..10, yaw -15..15 deg of a head turned -30..30 deg (camera yaw ="
    " yaw - head yaw), patches cut around the corners; eyes measured on its images",
    # Measured on Columbia's images with simgan_tf.eyestats (README, "Simulator"): the pupil moves
    # 0.28 px per degree of gaze relative to the head, so the eyeball is about 19 px in radius; the
    # corners are 44 px apart. At a straight gaze (|H| <= 5) the pupil moves 9.2 px from P = -30 to
    # +30, so the eyeball lies about 0.37 R behind the corners.
    ranges={
        "pitch": (-10.0, 10.0),
        "yaw": (-15.0, 15.0),
        "head_yaw": (-30.0, 30.0),
        "radius": (17.5, 20.0),
        "half_width": (1.02, 1.17),
        "corner_depth": (0.3, 0.45),
        # At a straight gaze the iris sits 0.4 px toward the outer corner from the corners' midpoint.
        "ball_offset": (0.03, 0.08),
        # Both lids cover a large dark iris: the dark blob rises only 0.07 px per degree of pitch
        # while the upper lid rises 0.12; the lower lid hardly moves. Lid heights vary per person
        # apart, so the opening alone does not give the pitch away.
        "open": (0.85, 1.15),
        "iris": (0.5, 0.58),
        "iris_shade": (0.07, 0.17),  # dark, yet lighter than the pupil, which must stay visible
        "pupil": (0.25, 0.45),
        "pupil_shade": (0.0, 0.03),
        # The corners lie below the eyeball's centre: just inside Columbia's corners the darkest row
        # lies 2.2 px below the dark blob (eyestats' corner_drop); with the corners level with the
        # eyeball these scenes gave -1.8, and an estimator trained on them read real eyes as looking
        # up (evaluate --scene-profile columbia, 3 seeds: pitch bias +3.5 against +1.4 now, error
        # 15.51 against 14.88 deg). So the upper lid arches high above the corners' line and the
        # lower lid lies nearly flat on it (the lid edges over the iris stay where they were).
        "ball_rise": (0.3, 0.3),
        "upper_rest": (0.57, 0.71),
        "upper_follow": (0.37, 0.37),
        "lower_rest": (0.04, 0.18),
        "lower_follow": (0.05, 0.05),
        # The lids' peaks follow the cornea sideways, as on Columbia's eyes (a straight gaze at
        # P = +-30 shows the upper lid highest over the iris). With none, an estimator trained on
        # these scenes read the head's turn worse on real eyes (evaluate --scene-profile columbia,
        # 3 seeds: pose blindness 0.73 against 0.44, error 17.28 against 16.11 deg).
        "upper_bulge": (0.5, 0.5),
        "lower_bulge": (0.35, 0.35),
        # Columbia's sclera is hardly brighter than the skin under the eye (eyestats' white_lift,
        # median 0.3 to 0.4 contrast units; 1.65 with a sclera of 0.75..1, 0.76 with 0.6..0.75 once
        # the lower lid lay flat), and no dark skin past the corners (Columbia's is plain).
        "sclera": (0.55, 0.7),
        "skin": (0.45, 0.8),
        "brow_dark": (0.0, 0.2),
        "bag_dark": (0.0, 0.2),
        "socket": (0.05, 0.25),
        # Little shading of the eyeball: a sphere's shading told an estimator where the eyeball's
        # centre was, which real eyes do not show, and read as looking up (pitch bias 6.6 -> 2.9 deg).
        "ambient": (0.8, 0.95),
        "light_y": (-0.3, 0.6),
    },
    centre=(27.5, 15.6),
    # Columbia's L and R files face opposite ways (docs/RESULTS.md, "Where real eyes show the head's
    # turn"), yet drawing half these eyes mirrored made the raw arm 0.2 to 0.3 deg worse and took the
    # gaze-term recipe's gain away (+5.5% -> +0.2%): every eye keeps its inner corner on the left.
    inner_left=1.0,
    glint_share=0.4,
    corner_crop=True,
)
PROFILES["mpiigaze"] = SceneProfile(
    "MPIIGaze (normalised laptop-camera patches): gaze mostly downward, pitch -25..5 deg, yaw -20..20"
    " deg of a head turned -10..10 deg; eyes measured on its images",
    ranges={
        "pitch": (-25.0, 5.0),
        "yaw": (-20.0, 20.0),
        "head_yaw": (-10.0, 10.0),
        "cx": (-3.5, 3.5),
        "half_width": (1.15, 1.3),
        "open": (0.85, 1.15),
        "iris": (0.48, 0.56),
        "iris_shade": (0.07, 0.17),
        "pupil": (0.25, 0.45),
        "pupil_shade": (0.0, 0.03),
        "brow_dark": (0.0, 0.25),
        "socket": (0.05, 0.3),
        "corner_depth": (0.43, 0.63),
        "upper_rest": (0.4, 0.4),
        "upper_follow": (0.37, 0.37),
        "lower_rest": (0.46, 0.46),
        "lower_follow": (0.15, 0.15),
    },
    centre=(27.0, 15.5),
)
# Columbia's scenes with the crop following the gaze and lids that open looking up. Columbia's crops
# follow the gaze: their dark blob rises 0.059 px per degree of pitch in the patch, `columbia`'s 0.161
# (docs/RESULTS.md, "Where across the lower rows the pitch is read"); here the eye region sits 0.11 px
# lower per degree of upward pitch, and the opening, not the iris's height, carries the pitch. An
# estimator trained on these renders errs less on real eyes (raw arm 14.32 against 14.88 deg on the
# test people), but the real-eye recipe's refiner trained on them gains less and its refined arm is
# no better (docs/RESULTS.md, "The recipe on renders whose crop follows the gaze"): so `columbia`
# stays the recipe's profile.
PROFILES["columbia_follow"] = replace(
    PROFILES["columbia"],
    description="Columbia Gaze's scenes, the crop following the gaze (the eye region 0.11 px lower per"
    " degree of upward pitch) and lids that open looking up (upper lid +0.8, lower -0.4 R per sin(pitch))",
    ranges={
        **PROFILES["columbia"].ranges,
        "upper_follow": (0.8, 0.8),
        "lower_follow": (-0.4, -0.4),
    },
    crop_follow=0.11,
)
DEFAULT_PROFILE = "uniform"


def get_profile(name: str) -> SceneProfile:
    """The scene profile called `name`; a SimGANError naming the known ones otherwise."""
    if name not in PROFILES:
        raise SimGANError(f"unknown scene profile {name!r}; expected one of {', '.join(PROFILES)}")
    return PROFILES[name]
