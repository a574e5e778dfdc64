"""Checkpoints: the whole training state in one TF checkpoint, written atomically.

A checkpoint holds the agent (weights, slow critic, optimizer states incl. loss
scales), the counters and the random state. TensorFlow writes the data files first
and only then swaps the `checkpoint` state file atomically, so a run killed while
saving still points at its previous complete checkpoint. No pickle: NumPy's random
state is stored as a JSON string variable.
"""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf


class Checkpoint:
  """Saves and restores `objects` (trackables by name) plus a NumPy Generator.

      checkpoint = Checkpoint(logdir / 'checkpoints', agent=agent, step=step)
      checkpoint.restore()     # False on a fresh logdir
      checkpoint.save()
  """

  def __init__(self, directory, rng, keep=2, **objects):
    self._directory = Path(directory)
    self._rng = rng
    self._rng_state = tf.Variable('', dtype=tf.string, trainable=False, name='rng_state')
    self._tf_rng = tf.random.get_global_generator()
    self._checkpoint = tf.train.Checkpoint(
        rng_state=self._rng_state, tf_rng=self._tf_rng, **objects)
    self._manager = tf.train.CheckpointManager(
        self._checkpoint, str(self._directory), max_to_keep=keep)

  @property
  def latest(self):
    return self._manager.latest_checkpoint

  def save(self, number=None):
    self._rng_state.assign(json.dumps(self._rng.bit_generator.state))
    return self._manager.save(checkpoint_number=number)

  def restore(self):
    """Restores the latest checkpoint; returns False when there is none."""
    path = self._manager.latest_checkpoint
    if path is None:
      return False
    # Everything the runner tracks is built before restoring, so all must match.
    self._checkpoint.restore(path).assert_existing_objects_matched()
    state = self._rng_state.numpy().decode()
    if state:
      self._rng.bit_generator.state = json.loads(state)
    return True


def numpy_rng(seed):
  return np.random.Generator(np.random.PCG64(seed))
