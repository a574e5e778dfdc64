"""`dreamkit eval`: play a trained run's checkpoint and report its returns.

    result = evaluate.evaluate('logdir/pong', checkpoint='latest', episodes=10)
    print(evaluate.table(result))

The run is rebuilt from its logdir alone (config.gin, plugin copies, entry points:
runner/record.py) and its checkpoint restored read-only (runner/restore.py): no file
of the run changes. The episodes are played as the runner evaluates
(runner/evaluation.py): fresh env copies and a policy seed derived from the run's
seed and the checkpoint's step, so with the run's own number of episodes and env
copies the mean return is the one the runner logged as `eval_return` at that step.
Rows go to `LOGDIR/eval/<step>.jsonl` (appended: one per episode, then a summary).
"""

import dataclasses
import json
import os
import pathlib
import time

import numpy as np

from dreamkit.errors import UserError

MODES = ('eval', 'train')


@dataclasses.dataclass
class Result:
  """What an evaluation found; `paper` and `normalized` only for published tasks."""
  logdir: pathlib.Path
  checkpoint: str
  step: int
  frames: int
  task: str
  mode: str
  seed: int
  envs: int
  returns: list
  lengths: list
  rows: pathlib.Path
  video: pathlib.Path = None
  normalized: float = None   # Atari: gamer-normalised mean return
  anchors: tuple = None      # Atari: (random, human gamer)
  paper: dict = None         # {'return', 'frames', 'seeds', 'first_frames'}
  startup_seconds: float = 0.0
  play_seconds: float = 0.0


def evaluate(logdir, checkpoint='latest', episodes=None, envs=None, task=None,
             video=None, mode='eval', out=None, bindings=(), plugins=()):
  """Plays `episodes` episodes of the run in `logdir` at `checkpoint`; a Result.

  Args:
    logdir: the run's folder.
    checkpoint: 'latest' or the agent step of a kept checkpoint.
    episodes / envs: how many episodes, on how many env copies in lock step (in
      worker processes when there are several). None: the run's `eval_eps` /
      `eval_envs`, which replays the runner's own evaluation at that step.
    task: another task or env option to evaluate on (transfer), e.g. 'atari:breakout';
      env options go in `bindings` ("envs.Atari.sticky = False").
    video: a .gif or .mp4 path for the first episode's image observations.
    mode: 'eval' (the actor's mode, as the runner evaluates) or 'train' (sampled).
    out: the JSONL file for the rows; None: `logdir/eval/<step>.jsonl`.
    bindings / plugins: extra gin bindings and plugin files, applied after the run's.
  """
  started = time.time()
  if mode not in MODES:
    raise UserError(f"--mode is 'eval' or 'train', not {mode!r}.")
  logdir = pathlib.Path(logdir)
  # TensorFlow comes after the cheap checks: a wrong path answers at once.
  from dreamkit.runner import record  # pylint: disable=import-outside-toplevel
  record.read(logdir)
  if video is not None and pathlib.Path(video).suffix.lower() not in ('.gif', '.mp4'):
    raise UserError(f'--video writes a .gif or an .mp4, not {video}.')
  # pylint: disable=import-outside-toplevel
  from dreamkit.runner import evaluation
  from dreamkit.runner import restore
  from dreamkit.runner import train
  bindings = list(bindings) + ([f'Pipeline.task = {task!r}'] if task else [])
  s = restore.settings(logdir, bindings, plugins)
  path, step = restore.find_checkpoint(logdir, checkpoint)
  count = int(episodes or s.eval_eps or 1)
  copies = int(envs or s.eval_envs or 1)
  if count < 1 or copies < 1:
    raise UserError('--episodes and --envs must be at least 1.')
  env_seed, policy_seed, _ = evaluation.seeds(s.seed, step)
  # Several copies step in worker processes; the seeds make their episodes the same
  # as in this process, so the returns do not depend on it.
  s.parallel = s.parallel or copies > 1
  restore.prepare(s)
  with train._make_envs(s, copies, env_seed) as env_copies:  # pylint: disable=protected-access
    agent = restore.agent(s, env_copies, path)
    if video is not None and not agent.image_keys:
      raise UserError(f'{s.task} has no image observation to make a --video of.')
    ready = time.time()
    played = evaluation.play(agent, env_copies, count, policy_seed, mode)
    action_repeat = env_copies.action_repeat
  returns, lengths = evaluation.returns(played)
  result = Result(
      logdir=logdir, checkpoint=path, step=step, frames=step * action_repeat,
      task=s.task, mode=mode, seed=s.seed, envs=copies, returns=returns,
      lengths=lengths, rows=pathlib.Path(out) if out else
      logdir / 'eval' / f'{step:09d}.jsonl',
      startup_seconds=ready - started, play_seconds=time.time() - ready)
  _published_scores(result)
  if video is not None:
    result.video = pathlib.Path(video)
    key = agent.image_keys[0]
    write_video(result.video, played[0][key])
  _write_rows(result)
  return result


def _published_scores(result):
  """The paper's DreamerV2 return at the run's frames, and the gamer-normalised score."""
  from dreamkit import scores  # pylint: disable=import-outside-toplevel
  name = scores.find(result.task)
  if name is None:
    return
  mean = float(np.mean(result.returns))
  if name.startswith('atari_'):
    result.anchors = scores.atari_anchors(name)
    result.normalized = float(scores.normalize(name, mean))
  curves = scores.curves(name)
  first = min(float(curve.frames[0]) for curve in curves)
  values = [float(np.interp(result.frames, curve.frames, curve.returns))
            for curve in curves if curve.frames[-1] >= result.frames]
  result.paper = {'return': float(np.mean(values)) if values else None,
                  'frames': result.frames, 'seeds': len(values),
                  'first_frames': first, 'task': name}


def summary(result):
  """The summary row: mean / std / min / max of returns and lengths, and the rest."""
  returns, lengths = np.asarray(result.returns), np.asarray(result.lengths)
  row = {
      'summary': True, 'step': result.step, 'frames': result.frames,
      'checkpoint': str(result.checkpoint), 'task': result.task, 'mode': result.mode,
      'seed': result.seed, 'envs': result.envs, 'episodes': len(returns),
      'eval_return': float(returns.mean()), 'eval_return_std': float(returns.std()),
      'eval_return_min': float(returns.min()), 'eval_return_max': float(returns.max()),
      'eval_length': float(lengths.mean()), 'eval_length_std': float(lengths.std()),
      'eval_length_min': int(lengths.min()), 'eval_length_max': int(lengths.max()),
      'steps_evaluated': int(lengths.sum())}
  if result.normalized is not None:
    row['gamer_normalized'] = result.normalized
  if result.paper and result.paper['return'] is not None:
    row['paper_return'] = result.paper['return']
  return row


def _write_rows(result):
  """Appends one row per episode, then the summary, to `result.rows`."""
  result.rows.parent.mkdir(parents=True, exist_ok=True)
  stamp = time.strftime('%Y-%m-%dT%H:%M:%S')
  lines = [json.dumps({'step': result.step, 'episode': index, 'return': ret,
                       'length': length, 'time': stamp})
           for index, (ret, length) in enumerate(zip(result.returns, result.lengths))]
  lines.append(json.dumps(dict(summary(result), time=stamp)))
  with open(result.rows, 'a', encoding='utf-8') as file:
    file.write('\n'.join(lines) + '\n')


def table(result):
  """The report `dreamkit eval` prints."""
  returns, lengths = np.asarray(result.returns), np.asarray(result.lengths)
  lines = [
      f'{result.logdir} at step {result.step:,} ({result.frames:,} frames; '
      f'{pathlib.Path(result.checkpoint).name}) on {result.task}: {len(returns)} '
      f"episode{'s' if len(returns) != 1 else ''}, mode {result.mode}, "
      f"{result.envs} env cop{'ies' if result.envs != 1 else 'y'}, seed {result.seed}",
      f"{'':8}{'mean':>10}{'std':>10}{'min':>10}{'max':>10}",
      f"{'return':8}{returns.mean():>10.4g}{returns.std():>10.4g}"
      f'{returns.min():>10.4g}{returns.max():>10.4g}',
      f"{'length':8}{lengths.mean():>10.4g}{lengths.std():>10.4g}"
      f'{lengths.min():>10d}{lengths.max():>10d}',
      f'steps evaluated: {int(lengths.sum()):,}']
  if result.normalized is not None:
    random, human = result.anchors
    lines.append(f'gamer-normalised score: {result.normalized:.3f} (random {random:g}, '
                 f'human gamer {human:g})')
  if result.paper:
    paper = result.paper
    if paper['return'] is None:
      lines.append(f"paper's DreamerV2 ({paper['task']}): its curves end before "
                   f'{result.frames:,} frames')
    elif result.frames < paper['first_frames']:
      lines.append(f"paper's DreamerV2 ({paper['task']}): first evaluated at "
                   f"{paper['first_frames']:,.0f} frames, {paper['return']:.4g} "
                   f"(mean of {paper['seeds']} seeds); this run is at {result.frames:,}")
    else:
      lines.append(f"paper's DreamerV2 at {result.frames:,} frames: "
                   f"{paper['return']:.4g} (mean of {paper['seeds']} seeds, "
                   f"{paper['task']})")
  if result.video:
    lines.append(f'video: {result.video}')
  lines.append(f'rows: {result.rows}')
  lines.append(f'start-up {result.startup_seconds:.1f} s, playing '
               f'{result.play_seconds:.1f} s')
  return '\n'.join(lines)


def write_video(path, frames, fps=20):
  """Writes uint8 frames [T, H, W, C] as a GIF (Pillow) or an MP4 (imageio with
  ffmpeg, `pip install imageio[ffmpeg]`); returns the path."""
  from dreamkit.outputs import video as video_lib  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path)
  frames = video_lib.as_video(frames)
  path.parent.mkdir(parents=True, exist_ok=True)
  if path.suffix.lower() == '.gif':
    temp = path.with_name(path.name + '.tmp')
    temp.write_bytes(video_lib.encode_gif(frames, fps))
    os.replace(temp, path)
    return path
  try:
    import imageio.v2 as imageio  # pylint: disable=import-outside-toplevel
    if frames.shape[-1] == 1:
      frames = np.repeat(frames, 3, -1)
    imageio.mimwrite(path, list(frames), fps=fps, macro_block_size=1)
  except (ImportError, ValueError, RuntimeError, OSError) as error:
    if 'ffmpeg' not in str(error).lower() and not isinstance(error, ImportError):
      raise
    raise UserError(
        f'Writing {path.name} needs ffmpeg through imageio (pip install '
        "'imageio[ffmpeg]'); a .gif needs nothing more.") from None
  return path
