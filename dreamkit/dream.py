"""`dreamkit dream`: what a trained world model imagines, beside what really happened.

    report = dream.dream('logdir/pong', context=5, horizon=45, samples=6,
                         output='dream.gif')

Takes `samples` real sequences of `context + horizon` steps from the run's replay
(opened read-only), feeds the first `context` steps to the posterior (the model sees
them: reconstructions), then imagines `horizon` steps from the last posterior state
without seeing another observation. The actions of the imagined steps are the
actor's (`actions='actor'`, what the behaviour learns from) or the recorded ones
(`actions='real'`: the model alone, open loop, as the runner's `openl_*` videos).

    step:      0 ... context-1 | context ... context+horizon-1
    model:     posterior       | prior, from the last posterior state
    actions:   recorded        | the actor's samples, or recorded (actions='real')

Written next to `output`:
  - `output` (.gif, or .mp4 with imageio's ffmpeg): each sample a column of truth,
    model and difference ((model - truth + 1) / 2, grey where they agree);
  - `<stem>.png`: a contact sheet, the same three rows at ten moments per sample;
  - `<stem>_rewards.png`: imagined reward and discount against the real ones
    (matplotlib, `pip install dreamkit[plot]`; skipped without it);
  - `<stem>.json`: the per-step errors that `report` holds.

With the actor's actions, the truth after `context` followed other actions: the
errors there measure where the imagined episode departs from the recorded one, not
the model's accuracy alone; `actions='real'` measures that.
"""

import dataclasses
import json
import pathlib

import numpy as np

from dreamkit.errors import UserError

ACTIONS = ('actor', 'real')
SHEET_MOMENTS = 10


@dataclasses.dataclass
class Report:
  """Per-step errors of the rollouts, [context + horizon] arrays (means over samples).

  image_error: mean squared error of each image key's pixels in [0, 1];
  reward_error / discount_error: mean absolute error of the heads against the
  training targets (reward after the run's clip_rewards, discount * (1 - terminal)).
  """
  step: int
  context: int
  horizon: int
  samples: int
  actions: str
  image_error: dict
  reward_error: list
  discount_error: list
  files: list

  def text(self):
    """A few lines: the errors over the context and along the imagination."""
    lines = [f'Dreamed {self.samples} sequences from the checkpoint at step '
             f'{self.step:,}: {self.context} context steps (posterior), then '
             f'{self.horizon} imagined with the {self.actions} actions.']
    moments = sorted({0, self.context - 1, self.context, self.context + 4,
                      self.context + 14, self.context + self.horizon - 1})
    moments = [m for m in moments if 0 <= m < self.context + self.horizon]
    lines.append(f"{'step':<15}" + ''.join(f'{m:>9d}' for m in moments))
    rows = [(f'{key} mse', values) for key, values in self.image_error.items()]
    rows.append(('reward |err|', self.reward_error))
    if self.discount_error:
      rows.append(('discount |err|', self.discount_error))
    for name, values in rows:
      lines.append(f'{name:<15}' + ''.join(f'{values[m]:>9.4f}' for m in moments))
    lines += [f'wrote {path}' for path in self.files]
    return '\n'.join(lines)


def dream(logdir, context=5, horizon=45, samples=6, output='dream.gif',
          checkpoint='latest', actions='actor', seed=0, bindings=(), plugins=()):
  """Imagines from the run in `logdir`; writes the files above and returns a Report."""
  logdir, output = pathlib.Path(logdir), pathlib.Path(output)
  if actions not in ACTIONS:
    raise UserError(f"--actions is 'actor' or 'real', not {actions!r}.")
  if context < 1 or horizon < 1 or samples < 1:
    raise UserError('--context, --horizon and --samples must be at least 1.')
  if output.suffix.lower() not in ('.gif', '.mp4'):
    raise UserError(f'-o writes a .gif or an .mp4, not {output}.')
  # pylint: disable=import-outside-toplevel
  from dreamkit.runner import record
  record.read(logdir)
  import tensorflow as tf
  from dreamkit.replay.hdf5 import HDF5Replay
  from dreamkit.runner import offline
  from dreamkit.runner import restore
  s = restore.settings(logdir, bindings, plugins)
  path, step = restore.find_checkpoint(logdir, checkpoint)
  length = context + horizon
  store = HDF5Replay(logdir / 'replay', minlen=length, maxlen=length,
                     prioritize_ends=False, read_only=True, seed=seed)
  try:
    if not store.stats['episodes']:
      raise UserError(
          f'{logdir / "replay"} holds no episode of {length} steps (context + horizon): '
          'lower --horizon or --context.')
    batch = store.sample(samples, length)
    spaces = offline.spaces_from_data(logdir / 'replay', offline.signature(store))
  finally:
    store.close()
  restore.prepare(s)
  agent = restore.agent(s, spaces, path)
  tf.random.set_seed(seed)
  rollout = _rollout(agent, batch, context, horizon, actions)
  report = Report(step, context, horizon, samples, actions, {}, [], [], [])
  for key, (truth, model) in rollout['images'].items():
    report.image_error[key] = np.mean((model - truth) ** 2, axis=(0, 2, 3, 4)).tolist()
  report.reward_error = np.mean(
      np.abs(rollout['reward_pred'] - rollout['reward']), 0).tolist()
  if 'discount_pred' in rollout:
    report.discount_error = np.mean(
        np.abs(rollout['discount_pred'] - rollout['discount']), 0).tolist()
  _write_files(report, rollout, output, context)
  return report


def _rollout(agent, batch, context, horizon, actions):
  """{'images': {key: (truth, model) [B, L, H, W, C] in [0, 1]}, 'reward',
  'reward_pred', 'discount', 'discount_pred': [B, L]} as NumPy."""
  # pylint: disable=import-outside-toplevel
  import tensorflow as tf
  from dreamkit.behavior.imagination import imagine
  wm = agent.world_model
  data = wm.preprocess({key: value for key, value in batch.items()
                        if not key.startswith('log_')})
  embed = wm.encoder(data)
  post, _ = wm.dynamics.observe(embed[:, :context], data['action'][:, :context],
                                data['is_first'][:, :context])
  start = {key: value[:, -1] for key, value in post.items()}
  if actions == 'real':
    prior = wm.dynamics.imagine(data['action'][:, context:], start)
  else:
    traj = imagine(wm, agent.actor_critic.actor,
                   {key: value[:, None] for key, value in start.items()}, None,
                   horizon, wm.discount)
    prior = {key: _time_major_to_batch(traj[key][1:]) for key in start}
  feat = tf.concat([wm.dynamics.get_feat(post), wm.dynamics.get_feat(prior)], 1)
  decoded = wm.heads['decoder'](feat)
  result = {'images': {}}
  for key in agent.image_keys:
    model = tf.clip_by_value(tf.cast(decoded[key].mode(), tf.float32) + 0.5, 0.0, 1.0)
    result['images'][key] = (np.asarray(data[key] + 0.5), np.asarray(model))
  result['reward'] = np.asarray(data['reward'])
  result['reward_pred'] = np.asarray(
      tf.cast(wm.heads['reward'](feat).mean(), tf.float32))
  if 'discount' in wm.heads:
    result['discount'] = np.asarray(data['discount'])
    result['discount_pred'] = np.asarray(
        tf.cast(wm.heads['discount'](feat).mean(), tf.float32))
  return result


def _time_major_to_batch(value):
  """[H, N, ...] -> [N, H, ...]."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  rank = len(value.shape)
  return tf.transpose(value, [1, 0, *range(2, rank)])


def strips(truth, model):
  """[B, L, 3H, W, C]: truth, model and difference stacked along the height."""
  error = (model - truth + 1) / 2
  return np.concatenate([truth, model, error], 2)


def _write_files(report, rollout, output, context):
  # pylint: disable=import-outside-toplevel
  from PIL import Image
  from dreamkit import evaluate
  from dreamkit.outputs import video as video_lib
  output.parent.mkdir(parents=True, exist_ok=True)
  if rollout['images']:
    key = next(iter(rollout['images']))
    frames = strips(*rollout['images'][key])          # [B, L, 3H, W, C]
    evaluate.write_video(output, video_lib.as_video(frames))
    report.files.append(output)
    sheet = output.with_suffix('.png')
    Image.fromarray(np.squeeze(contact_sheet(frames, context), -1)
                    if frames.shape[-1] == 1 else contact_sheet(frames, context)).save(sheet)
    report.files.append(sheet)
  plot = output.with_name(output.stem + '_rewards.png')
  if _plot_heads(rollout, context, plot):
    report.files.append(plot)
  numbers = output.with_suffix('.json')
  numbers.write_text(json.dumps({
      'step': report.step, 'context': report.context, 'horizon': report.horizon,
      'samples': report.samples, 'actions': report.actions,
      'image_mse': report.image_error, 'reward_abs_error': report.reward_error,
      'discount_abs_error': report.discount_error}, indent=1))
  report.files.append(numbers)


def contact_sheet(frames, context, moments=SHEET_MOMENTS):
  """uint8 [B * 3H, moments * W, C]: each sample's strips at `moments` steps spread
  over the rollout (the last context step and the first imagined one included)."""
  from dreamkit.outputs import video as video_lib  # pylint: disable=import-outside-toplevel
  length = frames.shape[1]
  picks = np.unique(np.concatenate([
      np.linspace(0, length - 1, moments).round().astype(int),
      [context - 1, min(context, length - 1)]]))
  picks = picks[np.linspace(0, len(picks) - 1, min(moments, len(picks))).round().astype(int)]
  rows = [np.concatenate(list(video_lib.as_video(sample[picks])), 1) for sample in frames]
  return np.concatenate(rows, 0)


def _plot_heads(rollout, context, path):
  """Imagined reward (and discount) against the real ones; False without matplotlib."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  except ImportError:
    return False
  names = ['reward'] + (['discount'] if 'discount_pred' in rollout else [])
  figure, axes = plt.subplots(len(names), 1, figsize=(7, 2.4 * len(names)), sharex=True,
                              squeeze=False)
  for axis, name in zip(axes[:, 0], names):
    for index in range(min(3, len(rollout[name]))):
      color = f'C{index}'
      axis.plot(rollout[name][index], color=color, lw=1, label=f'real {index}')
      axis.plot(rollout[name + '_pred'][index], color=color, lw=1, ls='--',
                label=f'model {index}')
    axis.axvline(context - 0.5, color='grey', lw=0.8)
    axis.set_ylabel(name)
  axes[0, 0].legend(fontsize=6, ncol=3)
  axes[-1, 0].set_xlabel('step (context | imagination)')
  figure.tight_layout()
  figure.savefig(path, dpi=80)
  plt.close(figure)
  return True
