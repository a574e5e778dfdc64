"""A trained run's agent, rebuilt from its logdir and restored read-only.

    settings = restore.settings(logdir, bindings)        # the run's Pipeline, parsed again
    path, step = restore.find_checkpoint(logdir, 'latest')   # or a step: 'latest' | 3000
    agent = restore.agent(settings, spaces, path)        # built, then restored

What `dreamkit eval` and `dreamkit dream` share. Nothing here writes: the config is
parsed from the logdir's record (runner/record.py), the checkpoint is only read, and
the agent's variables are built by one update on a batch of zeros (Keras builds
lazily; the restore then overwrites every variable that update touched, optimizer
state and counters included), run eagerly: at batch 1 x 2 steps that is faster than
tracing the training function.
"""

import contextlib
import io

import keras
import numpy as np
import tensorflow as tf

from dreamkit import agent as agent_lib
from dreamkit import precision as precision_lib
from dreamkit.errors import UserError
from dreamkit.runner import checkpoint as checkpoint_lib
from dreamkit.runner import record
from dreamkit.runner.rows import Counters
from dreamkit.spaces import action_size

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"  # how tf.train.Checkpoint names a value


def settings(logdir, bindings=(), extra_plugins=()):
  """The run's Pipeline (settings only), from its record plus `bindings`. The
  process's gin config is replaced by the run's."""
  import gin  # pylint: disable=import-outside-toplevel
  from dreamkit.runner import pipeline  # pylint: disable=import-outside-toplevel
  gin.clear_config()
  loaded = record.load(logdir, bindings, extra_plugins)
  return pipeline.Pipeline(loaded=loaded, logdir=logdir)


def checkpoints(logdir):
  """[(path, step)] of the logdir's checkpoints, oldest first."""
  directory = logdir / 'checkpoints'
  state = tf.train.get_checkpoint_state(str(directory)) if directory.is_dir() else None
  if state is None:
    return []
  found = []
  for path in state.all_model_checkpoint_paths:
    try:
      step = int(tf.train.load_checkpoint(path).get_tensor(
          'step' + _SUFFIX))
    except (tf.errors.OpError, ValueError, KeyError):
      continue  # Torn or foreign: not one to restore.
    found.append((path, step))
  return found


def find_checkpoint(logdir, which='latest'):
  """(path, step) of the checkpoint `which` names: 'latest' or an agent step."""
  found = checkpoints(logdir)
  if not found:
    raise UserError(f'{logdir} holds no readable checkpoint (checkpoints/ is missing '
                    'or empty): the run stopped before its first save.')
  if str(which) == 'latest':
    return found[-1]
  try:
    step = int(float(which))
  except ValueError:
    raise UserError(f"--checkpoint takes 'latest' or an agent step, not {which!r}.") from None
  for path, saved in found:
    if saved == step:
      return path, saved
  steps = ', '.join(f'{saved:,}' for _, saved in found)
  raise UserError(
      f'{logdir} has no checkpoint at step {step:,}; it keeps the steps {steps} '
      '(Pipeline.keep_checkpoints sets how many are kept).')


def prepare(s):
  """Seeds, precision and eager mode as the run had them (before building).

  `keras.utils.set_random_seed` seeds Python's `random`, NumPy's global generator and
  TensorFlow together: Keras draws its initializers' seeds from Python's `random`, so
  seeding TensorFlow alone leaves the initial weights different in every process.
  """
  keras.utils.set_random_seed(s.seed)
  precision_lib.set_precision(s.precision)
  tf.config.run_functions_eagerly(s.eager)


def agent(s, spaces, path):
  """The agent of settings `s` for `spaces` (obs_space, act_space), with the
  checkpoint at `path` restored; a one-line UserError names what differs."""
  counters = Counters.create()
  eager = tf.config.functions_run_eagerly()
  # What building prints (the encoder's keys, parameter counts) the run printed.
  with contextlib.redirect_stdout(io.StringIO()):
    built = agent_lib.build(spaces.obs_space, spaces.act_space, counters.step,
                            s.world_model, s.actor_critic, s.explorer, s.agent)
    tf.config.run_functions_eagerly(True)
    try:
      built.train(zeros_batch(spaces.obs_space, spaces.act_space))
    finally:
      tf.config.run_functions_eagerly(eager)
  rng = checkpoint_lib.numpy_rng(s.seed)
  checkpoint = checkpoint_lib.Checkpoint(
      s.logdir / 'checkpoints', built, rng, keep=s.keep_checkpoints,
      **counters.as_dict())
  checkpoint.restore(path)
  return built


def zeros_batch(obs_space, act_space, length=2):
  """A batch [1, length] of zeros in the spaces' shapes and dtypes (the first step
  starts an episode): enough to build every variable."""
  batch = {}
  for key, space in obs_space.items():
    dtype = bool if key.startswith('is_') else space.dtype
    batch[key] = np.zeros((1, length, *space.shape), dtype)
  batch['is_first'][:, 0] = True
  batch['action'] = np.zeros((1, length, action_size(act_space)), np.float32)
  return batch
