"""Check before spending: build what a run builds, from the spaces, writing nothing.

    dreamkit config --check pipelines/cartpole_dreamerv2.gin   ->   check.check(settings)

A bad value must cost seconds, not a prefill: `check` sets the precision, makes one
copy of the task's env, builds the agent from its spaces (every constructor runs and
checks its arguments; the world model builds its encoder for the observation keys),
then the replay store and the outputs in a temporary folder that is removed. The
training loop (train.py) builds its envs and agent in the same order, before its
logdir exists.

`locate(error, loaded)` adds to a message naming a binding (`WorldModel.clip_rewards`)
where the value came from (`file:line`, or the `-b` binding).
"""

import contextlib
import io
import re
import tempfile
from pathlib import Path

import tensorflow as tf

from dreamkit import agent as agent_lib
from dreamkit import outputs as outputs_lib
from dreamkit import precision as precision_lib
from dreamkit import replay as replays_lib
from dreamkit.errors import ConfigError


def check(s):
  """Builds the env, the agent, the replay and the outputs of settings `s` (a
  Pipeline) and closes them; a UserError says what is wrong. Returns one line."""
  from dreamkit.runner import train  # pylint: disable=import-outside-toplevel
  with contextlib.ExitStack() as stack:
    # What building prints (the encoder's keys, a precision fallback) is not the
    # answer: the answer is one line.
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    precision = precision_lib.set_precision(s.precision)
    envs = stack.enter_context(
        train._make_envs(s, 1, s.seed))  # pylint: disable=protected-access
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    agent = agent_lib.build(envs.obs_space, envs.act_space, step, s.world_model,
                            s.actor_critic, s.explorer, s.agent)
    agent.check_batch_length(s.batch_length)
    with tempfile.TemporaryDirectory(prefix='dreamkit-check-') as folder:
      for make in s.outputs:
        output = outputs_lib.registry.build(make, 'Pipeline.outputs', Path(folder))
        output.close()
      replay = replays_lib.registry.build(s.replay, 'Pipeline.replay',
                                          Path(folder) / 'replay')
      replay.close()
    stack.close()
    keys = ', '.join(f'{key} {tuple(space.shape)}'
                     for key, space in envs.obs_space.items()
                     if not key.startswith(('is_', 'log_')) and key != 'reward')
    return (f'OK: {s.task}, observations {keys}, actions {envs.act_space}; '
            f'{type(agent).__name__}, {type(agent.explorer).__name__} explorer, '
            f'{precision}. Nothing was written.')


# `Name.parameter` or `kind.Name.parameter`, as messages name a binding.
_NAMED = re.compile(r'(?<![\w/])((?:\w+/)?(?:[a-z]\w*\.)?[A-Z]\w*\.\w+)')
_LOCATED = re.compile(r'line \d+|\.gin:\d+|-b \'')


def locate(error, loaded):
  """`error`'s message, with the place of the binding it names, when one is bound.

  A message that names a file and line already is returned unchanged.
  """
  message = str(error)
  if _LOCATED.search(message) or loaded is None:
    return message
  from dreamkit import settings  # pylint: disable=import-outside-toplevel
  try:
    components = settings.components(loaded.files, loaded.bindings)
  except Exception:  # pylint: disable=broad-except
    return message  # The configuration cannot even be walked: say what we know.
  named = set(_NAMED.findall(message))
  places = []
  for component in components:
    unscoped = component.name.split('/')[-1]
    for parameter in component.parameters:
      if parameter.source in ('default', settings.OWNER, '?'):
        continue
      binding = {f'{component.name}.{parameter.name}', f'{unscoped}.{parameter.name}',
                 f"{unscoped.split('.')[-1]}.{parameter.name}"}
      call = parameter.value.endswith('()') and parameter.value in message
      # A string the message quotes ('gym:CartPol-v1'): the value it is about.
      quoted = parameter.value[:1] in ('"', "'") and len(parameter.value) > 4 and (
          parameter.value in message)
      if (binding & named or call or quoted) and parameter.source not in places:
        places.append(parameter.source)
  if not places:
    return message
  # Before gin's "In call to configurable ..." notes, which the CLI turns into a path.
  lines = message.rstrip().splitlines()
  notes = [i for i, line in enumerate(lines) if line.strip().startswith('In call to')]
  first_note = notes[0] if notes else len(lines)
  lines[first_note - 1] += f" (set at {'; '.join(places)})"
  return '\n'.join(lines)


def located(error, loaded):
  """A ConfigError of `error` with its place (see `locate`)."""
  return ConfigError(locate(error, loaded))
