"""Sweeps: variants x tasks x seeds of ordinary runs, on Ray Tune.

    dreamkit sweep pipelines/sweeps/cartpole_latents.gin --logdir logdir/latents
    dreamkit compare logdir/latents

- `spec.py`: the sweep file (`Sweep`, a gin root), the plan of trials and the check
  of every trial's config before anything runs.
- `driver.py`: Ray (local or a cluster) and the Tune Tuner over the trials.
- `trial.py`: one trial, as Tune runs it: a `dreamkit run` in a process of its own.
- `progress.py`: the live table of trials.

docs/sweeps.md describes the whole.
"""
