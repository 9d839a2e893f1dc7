"""The measures of `python -m simgan_tf.evaluate`, one module each, and the report they fill.

run (the run and the sizes) -> people (split by person) -> sets (the image sets) -> arms (gaze
error), drift (label drift), probes (realism) -> figures, report. `simgan_tf.evaluate` runs them in
that order; the tools they use live beside this package (gaze.py, realism.py, augment.py, stats.py).
"""
