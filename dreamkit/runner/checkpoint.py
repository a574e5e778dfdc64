"""Checkpoints: the whole training state in one TF checkpoint, written atomically.

A checkpoint holds every variable of the agent (weights, the slow critic, norm
statistics, optimizer slots, iterations and loss scales), the counters and the
random state. TensorFlow writes the data files first and only then swaps the
`checkpoint` state file atomically, so a run killed while saving still points at its
previous complete checkpoint. No pickle: NumPy's random state is stored as a JSON
string variable.

The agent's variables are saved as one ordered list, not through TensorFlow's object
graph: Keras 3 layers held in lists or dicts are invisible to `tf.train.Checkpoint`,
so the graph silently misses weights. Keras' own tracking (`layer.variables`) sees
them all, in an order fixed by the code and the config; a checkpoint written by a
different architecture is refused with a clear error.
"""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from dreamkit.errors import UserError
from dreamkit.optim import Optimizer


class Checkpoint:
  """Saves and restores `objects` (trackables by name) plus a NumPy Generator.

      checkpoint = Checkpoint(logdir / 'checkpoints', agent=agent, step=step)
      checkpoint.restore()     # False on a fresh logdir
      checkpoint.save()
  """

  def __init__(self, directory, rng, agent, keep=2, **counters):
    self._directory = Path(directory)
    self._rng = rng
    self._rng_state = tf.Variable('', dtype=tf.string, trainable=False, name='rng_state')
    self._tf_rng = tf.random.get_global_generator()
    # A counter the agent also holds (its step) is saved once, under its counter name.
    counter_ids = {id(counter) for counter in counters.values()}
    self._agent_variables = [
        v for v in agent_variables(agent) if id(v) not in counter_ids]
    self._checkpoint = tf.train.Checkpoint(
        rng_state=self._rng_state, tf_rng=self._tf_rng,
        agent_variables=self._agent_variables, **counters)
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
    try:
      # Everything is built before restoring, so every saved value must match.
      self._checkpoint.restore(path).assert_existing_objects_matched()
      count = tf.train.load_checkpoint(path).get_variable_to_shape_map()
      saved = sum(1 for key in count if key.startswith('agent_variables/'))
      if saved != len(self._agent_variables):
        raise ValueError(f'{saved} agent variables saved, {len(self._agent_variables)} built')
    except (ValueError, AssertionError, tf.errors.InvalidArgumentError) as e:
      raise UserError(
          f'The checkpoint {path} was written by a different configuration of the '
          f'agent ({str(e).splitlines()[0][:200]}). Resume with the config of that '
          'run (its logdir holds config.gin) or start a fresh --logdir.') from None
    state = self._rng_state.numpy().decode()
    if state:
      self._rng.bit_generator.state = json.loads(state)
    return True


def agent_variables(agent):
  """Every variable of `agent` a resumed run needs, in a fixed order, each once.

  The layers' variables (trainable or not, through Keras' tracking, which sees layers
  in lists and dicts), then what Keras does not track, attribute by attribute of each
  layer: plain `tf.Variable`s (e.g. ActorCritic's update counter), the variables of
  `tf.Module`s (e.g. RewardNorm) and the state of every `Optimizer`: its skipped
  counter and the Keras optimizer's iterations, moments and loss scale.
  """
  seen, result = set(), []

  def add(variables):
    for variable in variables:
      if id(variable) not in seen:
        seen.add(id(variable))
        result.append(variable)

  add(agent.variables)
  for layer in agent._flatten_layers(include_self=True, recursive=True):  # pylint: disable=protected-access
    for value in vars(layer).values():
      if isinstance(value, Optimizer):
        keras_optimizer = value.optimizer
        if keras_optimizer is None:
          raise ValueError(f'{value.name} is not built yet: train once before saving.')
        add([value.skipped])
        add(keras_optimizer.variables)
        inner = getattr(keras_optimizer, 'inner_optimizer', None)
        add(inner.variables if inner is not None else [])
      elif isinstance(value, tf.Variable):
        add([value])
      elif isinstance(value, tf.Module):
        add(value.variables)
  return result


def numpy_rng(seed):
  return np.random.Generator(np.random.PCG64(seed))
