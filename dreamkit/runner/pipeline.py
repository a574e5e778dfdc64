"""The pipeline: the one gin-configurable root that runs DreamerV2's alternating loop.

    dreamkit run pipelines/atari_dreamerv2.gin   ->   Pipeline(logdir).run()

`run` reads top to bottom as the reference's training loop: set up the logdir and
the precision, build envs, replay and outputs, prefill with a random policy, build
the agent with one train step (Keras builds variables lazily), restore the last
checkpoint or pretrain, then alternate collecting and training until `steps`.
All step counts are agent steps (env steps after action repeat).
"""

import collections
import json
import re
import signal
import time
from pathlib import Path

import gin
import numpy as np
import tensorflow as tf

from dreamkit import config as config_lib
from dreamkit import envs as envs_lib
from dreamkit import plugins as plugins_lib
from dreamkit import precision as precision_lib
from dreamkit.agent import Agent
from dreamkit.behavior.exploration import RandomPolicy
from dreamkit.errors import ConfigError
from dreamkit.outputs import JSONL
from dreamkit.outputs import TensorBoard
from dreamkit.outputs import Terminal
from dreamkit.replay import HDF5Replay
from dreamkit.runner import checkpoint as checkpoint_lib
from dreamkit.runner.driver import Driver
from dreamkit.runner.driver import SerialEnvs
from dreamkit.runner.schedule import Every


class Interrupted(Exception):
  """SIGTERM arrived: stop like Ctrl-C, saving a checkpoint first."""


# Exit codes of a run stopped by a signal (after its checkpoint), as shells report
# them, so a scheduler can tell a stopped run from a finished one.
EXIT_CTRL_C = 128 + signal.SIGINT     # 130
EXIT_SIGTERM = 128 + signal.SIGTERM   # 143
PROGRESS_SECONDS = 1.0                # between live progress updates to the outputs


@gin.configurable
class Pipeline:
  """Builds env(s), replay, agent and outputs from gin and runs the training loop.

  Args:
    logdir: where the run writes; an existing one is resumed. None: a fresh folder
      `./logdir/<task>-<time>`.
    loaded: the `config.Loaded` the CLI parsed (files, bindings, plugins), recorded
      in the logdir and handed to env worker processes.
    task: 'prefix:name', e.g. 'atari:pong', 'dmc:walker_walk', 'gym:CartPole-v1'.
    steps: agent-step budget (env steps after action repeat).
    envs / eval_envs: parallel env copies for training / evaluation.
    parallel: step env copies in `spawn` worker processes (else in this process).
    replay: replay store factory, called with the episode directory.
    outputs: metric sink factories, each called with the logdir.
    prefill: random-policy agent steps collected before training.
    pretrain: updates after the first (building) one, before collecting again.
    train_every / train_steps: every `train_every` agent steps run `train_steps`
      updates (world model, then actor-critic).
    eval_every / eval_eps: evaluate the actor's mode every `eval_every` steps for
      `eval_eps` episodes (0 disables evaluation).
    log_every: agent steps between metrics rows.
    video_every: agent steps between open-loop prediction videos (0: never).
    expl_until: collect with the agent's exploration behaviour (`Agent.expl_behavior`,
      policy mode 'explore') until this agent step, then with the task actor; 0: for
      the whole run, as the reference does. With `Greedy` both are the task actor.
    checkpoint_every: agent steps between checkpoints (also saved at exit).
    batch_size / batch_length: training chunks [B, T].
    precision: 32, 16 (mixed float16; bfloat16 on a CPU) or 'bf16'.
    eager: run every tf.function eagerly, for line-by-line debugging.
    seed: seeds TF, NumPy and the env copies (copy i gets seed + i).
  """

  def __init__(
      self, logdir=None, loaded=None, task=gin.REQUIRED, steps=int(1e8),
      envs=1, eval_envs=1, parallel=False, replay=HDF5Replay,
      outputs=(Terminal, JSONL, TensorBoard), prefill=10000, pretrain=1,
      train_every=5, train_steps=1, eval_every=int(1e5), eval_eps=1,
      log_every=int(1e4), video_every=0, expl_until=0, checkpoint_every=int(1e4),
      batch_size=16, batch_length=50, precision=16, eager=False, seed=0):
    self.task = task
    self.logdir = Path(logdir) if logdir else _fresh_logdir(task)
    self.loaded = loaded or config_lib.Loaded([], [], plugins_lib.loaded_files())
    self.steps = int(steps)
    self.num_envs, self.num_eval_envs = int(envs), int(eval_envs)
    self.parallel = parallel
    self.make_replay = replay
    self.make_outputs = list(outputs)
    self.prefill, self.pretrain = int(prefill), int(pretrain)
    self.train_every, self.train_steps = int(train_every), int(train_steps)
    self.eval_every, self.eval_eps = int(eval_every), int(eval_eps)
    self.log_every, self.video_every = int(log_every), int(video_every)
    self.expl_until = int(expl_until)
    self.checkpoint_every = int(checkpoint_every)
    self.batch_size, self.batch_length = int(batch_size), int(batch_length)
    self.precision, self.eager, self.seed = precision, bool(eager), int(seed)
    for name in ('steps', 'train_every', 'batch_size', 'batch_length', 'log_every'):
      if getattr(self, name) < 1:
        raise ConfigError(f'Pipeline.{name} must be at least 1, got {getattr(self, name)}.')

  def run(self):
    """Trains until `steps` agent steps; Ctrl-C or SIGTERM saves and stops.

    A stopped run exits with 130 (Ctrl-C) or 143 (SIGTERM) after its checkpoint.
    """
    # Set before anything can fail: _close() saves only a checkpoint worth keeping.
    self.checkpoint = None
    self._resumable = False
    exit_code = None
    try:
      self._setup()
      self._loop()
    except KeyboardInterrupt:
      print('\nInterrupted (Ctrl-C): saving a checkpoint before exiting.')
      exit_code = EXIT_CTRL_C
    except Interrupted:
      print('\nInterrupted (SIGTERM): saving a checkpoint before exiting.')
      exit_code = EXIT_SIGTERM
    finally:
      self._close()
    if exit_code is not None:
      raise SystemExit(exit_code)

  # --- Set-up, in the order things depend on each other -------------------------

  def _setup(self):
    self.logdir.mkdir(parents=True, exist_ok=True)
    self.has_checkpoint = (self.logdir / 'checkpoints' / 'checkpoint').exists()
    if not self.has_checkpoint:
      # A resumed run keeps the config.gin it was started with until the checkpoint
      # is restored: a refused restore must leave the run's own record in place.
      config_lib.save(self.logdir, 'config.gin')
    (self.logdir / 'plugins.json').write_text(json.dumps(self.loaded.plugins, indent=1))
    self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupted)
    tf.random.set_seed(self.seed)
    self.rng = checkpoint_lib.numpy_rng(self.seed)
    # The policy must be set before any layer is built.
    self.policy_name = precision_lib.set_precision(self.precision)
    tf.config.run_functions_eagerly(self.eager)
    self.outputs = [make(self.logdir) for make in self.make_outputs]
    for output in self.outputs:
      output.text('config', config_lib.resolved_str())

    self.train_envs = self._make_envs(self.num_envs, self.seed)
    self.eval_envs = (
        self._make_envs(self.num_eval_envs, self.seed + 1000) if self.eval_eps else None)
    self.obs_space, self.act_space = self.train_envs.obs_space, self.train_envs.act_space
    self.action_repeat = int(getattr(self.train_envs, 'action_repeat', 1) or 1)
    self.replay = self.make_replay(self.logdir / 'replay')

    # Counters are TF variables so the checkpoint carries them.
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
    self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name='updates')
    self.episodes = tf.Variable(0, dtype=tf.int64, trainable=False, name='episodes')
    self.metrics = collections.defaultdict(list)
    self.driver = Driver(self.train_envs)
    self.driver.on_step(self.replay.add_step)
    self.driver.on_step(self._count_step)
    self.driver.on_episode(self._log_train_episode)
    self.clock = {'time': time.time(), 'step': 0, 'updates': 0}
    self.start_time = time.time()
    self.last_progress = 0.0

  def _make_envs(self, num, seed):
    if self.parallel:
      return envs_lib.ParallelEnvs(
          self.task, num, gin_config=gin.config_str(), plugins=self.loaded.plugins,
          seed=seed)
    return SerialEnvs([envs_lib.make(self.task, seed=seed + i) for i in range(num)])

  # --- The loop -------------------------------------------------------------------

  def _loop(self):
    if not self.has_checkpoint:
      self._prefill()
    self.dataset = iter(self.replay.dataset(self.batch_size, self.batch_length))
    self.agent = gin.get_configurable(Agent)(self.obs_space, self.act_space, self.step)
    self.train_state = None
    self._train_once()  # Builds every variable before restoring or pretraining.
    self._after_first_update()
    self.checkpoint = checkpoint_lib.Checkpoint(
        self.logdir / 'checkpoints', self.rng, self.agent, step=self.step,
        updates=self.updates, episodes=self.episodes)
    restored = self.checkpoint.restore()  # A UserError if another config wrote it.
    self._resumable = True
    if restored:
      config_lib.save(self.logdir, 'config.gin')
      print(f'Resumed from {self.checkpoint.latest} at step {int(self.step)}.')
    else:
      for _ in range(self.pretrain):
        self._train_once()

    should_train = Every(self.train_every, int(self.step))
    should_log = Every(self.log_every, int(self.step))
    # As the reference, evaluate once before collecting (after pretrain or a resume),
    # then every `eval_every` agent steps.
    should_eval = Every(self.eval_every, int(self.step)) if self.eval_eps else None
    evaluated = False
    should_video = Every(self.video_every, int(self.step)) if self.video_every else None
    should_save = Every(self.checkpoint_every, int(self.step))

    def policy(obs, state):
      explore = not self.expl_until or int(self.step) < self.expl_until
      return self.agent.policy(obs, state, mode='explore' if explore else 'train')

    def train_and_log(transition, worker):
      del worker
      if transition['is_first']:
        return
      step = int(self.step)
      if should_train(step):
        for _ in range(self.train_steps):
          self._train_once()
      if should_log(step):
        self._write_row(step)
      if should_video and should_video(step):
        self._write_videos(step)
      if should_save(step):
        self._save()

    self.driver.on_step(train_and_log)
    while int(self.step) < self.steps:
      if should_eval and (should_eval(int(self.step)) or not evaluated):
        self._evaluate()
        evaluated = True
      # Collect in slices so evaluation happens on schedule.
      until = self.steps if not should_eval else min(
          self.steps, int(self.step) + self.eval_every)
      self.driver(policy, steps=max(1, until - int(self.step)))
    if should_eval:
      self._evaluate()
    self._write_row(int(self.step))

  def _prefill(self):
    missing = self.prefill - int(self.replay.stats['steps'])
    if missing <= 0:
      return
    print(f'Prefilling {missing} agent steps with a random policy.')
    random_policy = RandomPolicy(act_space=self.act_space, seed=self.seed)
    self.driver(random_policy, steps=missing)
    self.driver.reset()  # The agent's policy state starts fresh after prefill.

  def _train_once(self):
    batch = next(self.dataset)
    self.train_state, metrics = self.agent.train(batch, self.train_state)
    self.updates.assign_add(1)
    for key, value in metrics.items():
      self.metrics[key].append(float(np.mean(value)))

  def _save(self):
    # Outputs first: after a crash, the metrics never lag behind the checkpoint.
    for output in self.outputs:
      output.flush()
    self.checkpoint.save()

  def _progress(self, step):
    """Live counters for the outputs that show progress (the terminal's status line)."""
    now = time.time()
    if now - self.last_progress < PROGRESS_SECONDS:
      return
    self.last_progress = now
    counters = {'frames': step * self.action_repeat, 'train_steps': int(self.updates),
                'steps_budget': self.steps}
    for output in self.outputs:
      output.progress(step, counters)

  def _after_first_update(self):
    config_lib.save(self.logdir, 'operative_config.gin', operative=True)
    unused = config_lib.unused_bindings()
    if self.parallel:
      # Env bindings are read inside the worker processes, not here.
      unused = [name for name in unused if not name.startswith('envs.')]
    if unused:
      message = ('WARNING: these bindings were set but nothing read them (misspelled '
                 'scope, or a component that is not used): ' + ', '.join(unused))
      print(message)
      (self.logdir / 'unused_bindings.txt').write_text('\n'.join(unused) + '\n')
    inactive = collections.Counter(
        name.rsplit('.', 1)[0] for name in config_lib.inactive_alternatives())
    if inactive:
      listed = ', '.join(f'{name} ({count})' for name, count in sorted(inactive.items()))
      print(f'Note: bound but not built in this run (another component of the same '
            f'kind is used): {listed}.')

  # --- Counters and metrics -------------------------------------------------------

  def _count_step(self, transition, worker):
    del worker
    if not transition['is_first']:
      self.step.assign_add(1)
      self._progress(int(self.step))

  def _log_train_episode(self, episode, worker):
    """A row per finished training episode, as the reference logs them."""
    del worker
    self.episodes.assign_add(1)
    step = int(self.step)
    row = {'train_return': float(np.sum(episode['reward'])),
           'train_length': len(episode['reward']) - 1,
           'frames': step * self.action_repeat, 'episodes': int(self.episodes),
           'train_steps': int(self.updates), 'steps_budget': self.steps}
    self._emit(step, row)

  def _write_row(self, step):
    now = time.time()
    elapsed = max(now - self.clock['time'], 1e-9)
    row = {
        # Counters (`*_skipped`) are totals: their latest value, not a window mean.
        key: float(values[-1] if key.endswith('_skipped') else np.mean(values))
        for key, values in self.metrics.items() if values}
    if not row:
      return  # Nothing trained since the last row.
    steps = step - self.clock['step']
    row.update(
        frames=step * self.action_repeat,
        fps=steps * self.action_repeat / elapsed,  # frames/s, as the reference logs
        step_fps=steps / elapsed,                  # agent steps/s
        train_fps=(int(self.updates) - self.clock['updates']) / elapsed,
        train_steps=int(self.updates), episodes=int(self.episodes),
        replay_steps=int(self.replay.stats['steps']), steps_budget=self.steps,
        wall_time=now - self.start_time)
    self.clock = {'time': now, 'step': step, 'updates': int(self.updates)}
    self.metrics.clear()
    self._emit(step, row)

  def _emit(self, step, row):
    for output in self.outputs:
      output.write(step, row)

  def _write_videos(self, step):
    for name, video in self.agent.report(next(self.dataset)).items():
      frames = _video_grid(np.asarray(video))
      for output in self.outputs:
        output.video(step, name, frames)

  def _evaluate(self):
    driver = Driver(self.eval_envs)
    returns, lengths = [], []
    driver.on_episode(lambda ep, worker: (
        returns.append(float(np.sum(ep['reward']))), lengths.append(len(ep['reward']) - 1)))
    policy = lambda obs, state: self.agent.policy(obs, state, mode='eval')
    driver(policy, episodes=self.eval_eps)
    # Envs run in lock step, so several copies may finish more than eval_eps episodes.
    returns, lengths = returns[:self.eval_eps], lengths[:self.eval_eps]
    step = int(self.step)
    row = {'eval_return': float(np.mean(returns)), 'eval_length': float(np.mean(lengths)),
           'frames': step * self.action_repeat, 'wall_time': time.time() - self.start_time}
    self._emit(step, row)

  def _close(self):
    # Only a restored or freshly trained agent is saved: after a refused restore the
    # agent is untrained, and saving it would push the run's checkpoints out.
    if self.checkpoint is not None and self._resumable:
      self._save()
    for output in getattr(self, 'outputs', []):
      output.close()
    for envs in (getattr(self, 'train_envs', None), getattr(self, 'eval_envs', None)):
      if envs is not None:
        envs.close()
    replay = getattr(self, 'replay', None)
    if replay is not None and hasattr(replay, 'close'):
      replay.close()
    if getattr(self, '_previous_sigterm', None) is not None:
      signal.signal(signal.SIGTERM, self._previous_sigterm)


def _video_grid(video):
  """[B, T, H, W, C] floats in [0, 1] -> uint8 [T, H, B*W, C] (batch side by side)."""
  batch, length, height, width, channels = video.shape
  video = np.clip(video * 255, 0, 255).astype(np.uint8)
  return video.transpose(1, 2, 0, 3, 4).reshape(length, height, batch * width, channels)


def _fresh_logdir(task):
  name = re.sub(r'[^A-Za-z0-9_.-]+', '_', str(task)).strip('_') or 'run'
  return Path('logdir') / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _raise_interrupted(signum, frame):
  del signum, frame
  raise Interrupted()
