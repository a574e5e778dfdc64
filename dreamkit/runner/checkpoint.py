"""Checkpoints: the whole training state under readable names, written atomically.

What is saved is explicit. Each part of the agent says what it holds with a
`state()` method, a dict of names to variables, Keras layers, lists or other parts
with a `state()` of their own:

    Agent.state()        {'world_model': wm, 'actor_critic': ac, 'explorer': {...}}
    WorldModel.state()   {'encoder': layer, 'dynamics': layer, 'heads': {...}, 'optimizer': opt}
    Optimizer.state()    {'skipped': variable, 'keras': [iterations, moments, ...]}

`named_variables` flattens that into `{'agent/world_model/encoder/003_kernel': v}`:
the name of a part is the path of keys that leads to it, and the variables of a Keras
layer are numbered in the layer's own (code-fixed) order with their short names. The
checkpoint stores exactly these names (`tf.train.list_variables` shows them), beside
the run's counters and random state, so a test can read it, a refactoring that keeps
the names keeps old checkpoints loadable, and a checkpoint of another architecture is
refused with the names and shapes that differ. No pickle: NumPy's random state is a
JSON string variable.

TensorFlow writes the data files first and only then swaps the `checkpoint` state
file atomically, so a run killed while saving still points at its previous complete
checkpoint. A save that fails (a full disk, no permission) removes what it had
written and raises a `StorageError`; a restore whose newest checkpoint cannot be read
(torn or damaged files) warns and falls back to the one before it.
"""

import json
import re
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dreamkit.errors import StorageError, UserError

_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
# What reading a torn or damaged checkpoint raises: TensorFlow's own errors (a short
# or missing file), and an IndexError ('Read less bytes than requested') from a
# truncated data file. A mismatch of names or shapes is a UserError before that.
_UNREADABLE = (tf.errors.OpError, IndexError, OSError)
# Left by a save that was killed mid-write: TF's temporary checkpoint folder and the
# temporary state file it renames to `checkpoint`.
_INTERRUPTED = re.compile(r'^(.+-\d+_temp|checkpoint\.tmp.*)$')


def named_variables(part, prefix='agent'):
  """{name: tf.Variable} of `part` (anything with a `state()`), names as in the doc.

  A variable reachable twice (the agent step shared by several parts) is listed
  once, under the first name that reaches it.
  """
  result, seen = {}, set()

  def visit(value, name):
    if isinstance(value, tf.Variable) or isinstance(value, keras.Variable):
      if id(value) not in seen:
        seen.add(id(value))
        result[name] = value
    elif hasattr(value, 'state') and callable(value.state):
      visit(value.state(), name)
    elif isinstance(value, keras.layers.Layer):
      if not value.variables:
        raise ValueError(f'{name} has no variables yet: train once before saving.')
      for index, variable in enumerate(value.variables):
        visit(variable, f'{name}/{index:03d}_{_short(variable)}')
    elif isinstance(value, dict):
      for key in value:
        visit(value[key], f'{name}/{key}')
    elif isinstance(value, (list, tuple)):
      for index, item in enumerate(value):
        visit(item, f'{name}/{index:03d}_{_short(item)}' if _is_variable(item)
              else f'{name}/{index}')
    else:
      raise TypeError(f'{name}: cannot save {value!r}; a state() holds variables, '
                      'Keras layers, lists and dicts of them, or parts with a state().')

  visit(part, prefix)
  return result


def _is_variable(value):
  return isinstance(value, (tf.Variable, keras.Variable))


def _short(variable):
  name = getattr(variable, 'name', 'variable').split('/')[-1].split(':')[0]
  return re.sub(r'[^A-Za-z0-9_.-]', '_', name)


def _tf_variable(variable):
  """The tf.Variable behind a Keras 3 variable (what tf.train.Checkpoint saves)."""
  return getattr(variable, 'value', variable) if isinstance(variable, keras.Variable) \
      else variable


def _nest(flat):
  """{'a/b/c': v} -> {'a': {'b': {'c': v}}}: tf.train.Checkpoint keys are the paths."""
  tree = {}
  for name, variable in flat.items():
    node = tree
    *parents, leaf = name.split('/')
    for parent in parents:
      node = node.setdefault(parent, {})
    node[leaf] = _tf_variable(variable)
  return tree


def saved_names(path):
  """{name: shape} of the agent variables in the checkpoint at `path`."""
  names = {}
  for key, shape in tf.train.list_variables(path):
    if key.startswith('agent/') and key.endswith(_SUFFIX):
      names[key[:-len(_SUFFIX)]] = tuple(shape)
  return names


class Checkpoint:
  """Saves and restores an agent's named state, counters and random state.

      checkpoint = Checkpoint(logdir / 'checkpoints', agent, rng, step=step, ...)
      checkpoint.restore()     # False when there is none; a UserError on a mismatch
      checkpoint.save()

  Args:
    directory: where the checkpoints go.
    agent: anything with a `state()` (built: train once first).
    rng: a NumPy Generator whose state is saved and restored.
    keep: how many checkpoints to keep.
    counters: named scalar variables (the run's step, updates, episodes, wall time).

  A checkpoint written before a counter of `ADDED_COUNTERS` existed still restores;
  that counter keeps its value and is listed in `missing_counters`. `restored` is the
  path restore() restored (None before).
  """

  # Counters added after checkpoints were already being written, so old ones lack them.
  ADDED_COUNTERS = ('wall_time',)

  def __init__(self, directory, agent, rng, keep=2, **counters):
    self._directory = Path(directory)
    self._rng = rng
    self._rng_state = tf.Variable('', dtype=tf.string, trainable=False, name='rng_state')
    counter_ids = {id(counter) for counter in counters.values()}
    # A counter the agent also holds (its step) is saved once, as a counter.
    self.variables = {
        name: variable for name, variable in named_variables(agent).items()
        if id(variable) not in counter_ids and id(_tf_variable(variable)) not in counter_ids}
    self.counters = dict(counters)
    self.missing_counters = []
    self.restored = None
    self._checkpoint = self._make_checkpoint(self.counters)
    self._manager = tf.train.CheckpointManager(
        self._checkpoint, str(self._directory), max_to_keep=keep)

  def _make_checkpoint(self, counters):
    return tf.train.Checkpoint(
        agent=_nest(self.variables)['agent'], rng_state=self._rng_state,
        tf_rng=tf.random.get_global_generator(), **counters)

  @property
  def latest(self):
    return self._manager.latest_checkpoint

  def save(self, number=None):
    """Writes a checkpoint; returns its path.

    Raises:
      StorageError: it could not be written; what it had written is removed, so the
        directory holds the previous checkpoints, complete.
    """
    self._rng_state.assign(json.dumps(self._rng.bit_generator.state))
    self._directory.mkdir(parents=True, exist_ok=True)
    self._remove_interrupted()
    before = set(self._directory.iterdir())
    try:
      return self._manager.save(checkpoint_number=number)
    except (OSError, tf.errors.OpError) as error:
      self._remove_unfinished(before)
      latest = self._manager.latest_checkpoint
      raise StorageError(
          f'Could not write a checkpoint in {self._directory} ({_reason(error)}); '
          + (f'the last complete one is {latest}.' if latest
             else 'none was written before.')) from error

  def _remove_interrupted(self):
    """Removes what a save killed mid-write (an earlier process) left behind:
    TensorFlow's `<prefix>-<n>_temp` folders and `checkpoint.tmp*` state files. They
    are never complete, and only the run that saves into this folder writes them."""
    for path in self._directory.iterdir():
      if _INTERRUPTED.match(path.name):
        if path.is_dir():
          shutil.rmtree(path, ignore_errors=True)
        else:
          path.unlink(missing_ok=True)

  def _remove_unfinished(self, before):
    """Removes what a failed save added that the state file does not list."""
    state = tf.train.get_checkpoint_state(str(self._directory))
    listed = {Path(path).name for path in state.all_model_checkpoint_paths} \
        if state else set()
    for path in set(self._directory.iterdir()) - before:
      if path.name == 'checkpoint' or path.name.split('.')[0] in listed:
        continue
      if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
      else:
        path.unlink(missing_ok=True)

  def restore(self, path=None):
    """Restores the newest readable checkpoint; returns False when there is none.

    One that cannot be read (torn or damaged files) is skipped with a warning for
    the one before it (`Pipeline.keep_checkpoints` keeps that many). With `path`,
    restores that one checkpoint only (`dreamkit eval --checkpoint STEP`). Restoring
    reads files and writes none.

    Raises:
      UserError: a checkpoint of another configuration, or none can be read.
    """
    paths = [path] if path else list(reversed(self._manager.checkpoints))  # Newest first.
    if not paths:
      return False
    problems = []
    for path in paths:
      try:
        self._restore(path)
      except _UNREADABLE as error:
        problems.append(f'{path}: {_reason(error)}')
        warnings.warn(f'Checkpoint {path} cannot be read ({_reason(error)}); '
                      + ('trying the one before it.' if path != paths[-1] else
                         'it was the oldest kept.'), stacklevel=2)
        continue
      self.restored = path
      return True
    raise UserError(
        f"No checkpoint in {self._directory} can be read ({'; '.join(problems)}). "
        'Move the checkpoints folder away to train from fresh weights on the kept '
        'replay, or start a fresh --logdir.')

  def _restore(self, path):
    self._check_names(path)
    checkpoint = self._checkpoint
    self.missing_counters = self._check_counters(path)
    if self.missing_counters:  # An older checkpoint: restore what it has.
      checkpoint = self._make_checkpoint({
          name: counter for name, counter in self.counters.items()
          if name not in self.missing_counters})
    try:
      checkpoint.restore(path).assert_existing_objects_matched()
    except (ValueError, AssertionError, tf.errors.InvalidArgumentError) as e:
      raise UserError(
          f'The checkpoint {path} does not match this agent '
          f'({str(e).splitlines()[0][:200]}). Resume with the config of that run '
          '(its logdir holds config.gin) or start a fresh --logdir.') from None
    state = self._rng_state.numpy().decode()
    if state:
      self._rng.bit_generator.state = json.loads(state)

  def _check_counters(self, path):
    """The counters that `path` lacks; a UserError unless each is in ADDED_COUNTERS."""
    saved = {key[:-len(_SUFFIX)] for key, _ in tf.train.list_variables(path)
             if key.endswith(_SUFFIX)}
    missing = [name for name in self.counters if name not in saved]
    required = [name for name in missing if name not in self.ADDED_COUNTERS]
    if required:
      raise UserError(
          f"The checkpoint {path} has no counter {', '.join(map(repr, required))}: "
          'it was not written by this training loop. Start a fresh --logdir.')
    return missing

  def _check_names(self, path):
    """A UserError naming the parts whose variables or shapes differ from `path`'s."""
    saved = saved_names(path)
    if not saved:
      raise UserError(
          f'The checkpoint {path} has no named agent state: it was written by an '
          'older dreamkit (before named checkpoints). Start a fresh --logdir, or '
          'resume it with the dreamkit version that wrote it.')
    built = {name: tuple(v.shape) for name, v in self.variables.items()}
    if saved == built:
      return
    differences = []
    for part in sorted({_part(name) for name in set(saved) | set(built)}):
      have = {n: s for n, s in saved.items() if _part(n) == part}
      want = {n: s for n, s in built.items() if _part(n) == part}
      if have == want:
        continue
      if not have or not want:
        differences.append(f"{part} {'is not in the checkpoint' if not have else 'is not built by this config'}")
        continue
      shapes = [f'{n.rsplit("/", 1)[-1]} {have[n]} saved vs {want[n]} built'
                for n in sorted(set(have) & set(want)) if have[n] != want[n]]
      detail = shapes[0] if shapes else f'{len(have)} variables saved vs {len(want)} built'
      differences.append(f'{part}: {detail}')
    raise UserError(
        f'The checkpoint {path} was written by a different configuration of the '
        f"agent: {'; '.join(differences[:4])}"
        f"{f' (and {len(differences) - 4} more)' if len(differences) > 4 else ''}. "
        'Resume with the config of that run (its logdir holds config.gin) or start a '
        'fresh --logdir.')


def _reason(error):
  """The first line of an error's message, short enough for a one-line report."""
  text = (getattr(error, 'message', None) or str(error) or type(error).__name__)
  text = text.strip().splitlines()[0] if text.strip() else type(error).__name__
  # TensorFlow prefixes the op's function node: the file and the reason come after.
  text = re.sub(r'^\{\{function_node [^}]*\}\}\s*', '', text)
  return text[:200]


def _part(name):
  """The part a variable belongs to: its name without the last component."""
  return name.rsplit('/', 1)[0]


def numpy_rng(seed):
  return np.random.Generator(np.random.PCG64(seed))
