"""DreamerV2's training loop, as one function of locals.

    train.run(settings)     # settings: a Pipeline (the gin root), see pipeline.py

In the order the code runs it:

 1. Seeds, precision, the train envs (offline: the episode folder, read-only) and
    the agent from their spaces: every value is checked before anything is written
    (`config --check` too).
 2. The logdir, the run's record (config.gin, plugins.json), the outputs and the
    replay store; the stack closes all of it at exit, in reverse.
 3. The driver and its subscribers: replay, the step counter, episode rows.
 4. Prefill with a random policy (a fresh run only; a resumed run has its replay).
 5. The dataset and one update that builds every variable of the agent.
 6. Restore the checkpoint, or start: write config.gin and pretrain.
 7. From here a stop saves a checkpoint. Evaluate, then alternate collecting and
    training (offline: training alone) until the step budget, evaluating every
    `eval_every` steps in fresh env copies seeded from (seed, step), so that
    `dreamkit eval` can play them again (runner/evaluation.py).

All step counts are agent steps (env steps after action repeat). Ctrl-C or SIGTERM
saves and exits with 130 or 143, so a scheduler can tell a stopped run from a
finished one.
"""

import contextlib
import dataclasses
import errno
import shutil
import signal

import gin
import numpy as np
import tensorflow as tf

from dreamkit import agent as agent_lib
from dreamkit import config as config_lib
from dreamkit import diagnostics
from dreamkit import envs as envs_lib
from dreamkit import outputs as outputs_lib
from dreamkit import replay as replays_lib
from dreamkit.behavior.exploration import RandomPolicy
from dreamkit.errors import StorageError, UserError
from dreamkit.outputs import video as video_lib
from dreamkit.runner import checkpoint as checkpoint_lib
from dreamkit.runner import evaluation
from dreamkit.runner import offline as offline_lib
from dreamkit.runner import record as record_lib
from dreamkit.runner import restore as restore_lib
from dreamkit.runner.driver import Driver
from dreamkit.runner.rows import Counters, Rows, recorded_counters
from dreamkit.schedules import Every

EXIT_CTRL_C = 128 + signal.SIGINT     # 130
EXIT_SIGTERM = 128 + signal.SIGTERM   # 143


# A failed write for these reasons is the storage's fault, not the code's.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                  errno.EIO)


class Interrupted(Exception):
  """SIGTERM arrived: stop like Ctrl-C, saving a checkpoint first."""


class Diverged(UserError):
  """`Pipeline.max_nonfinite` updates in a row were not finite: the run stopped
  without saving the weights that produced them."""


@dataclasses.dataclass
class _Record:
  """What the run saved, and why it has saved nothing (while it has not)."""
  saved: list = dataclasses.field(default_factory=list)  # (path, agent step) per save
  unsaved: str = 'stopped before training began'


def run(s):
  """Trains as the settings `s` say; a stop by signal saves, then exits 130 / 143.

  The last lines say how the run ended and what it saved where (printed after the
  outputs closed, so below the terminal's last status line). A run that diverged
  (`Diverged`), could not write (`StorageError`) or lost an env for good
  (`EnvFailed`) prints them, then raises.
  """
  record = _Record()
  try:
    with contextlib.ExitStack() as stack:
      _train(s, stack, record)
  except KeyboardInterrupt:
    _stopped('Ctrl-C', s.logdir, record, EXIT_CTRL_C)
  except Interrupted:
    _stopped('SIGTERM', s.logdir, record, EXIT_SIGTERM)
  except (Diverged, StorageError, envs_lib.EnvFailed):
    print(saved_report(s.logdir, record.saved, record.unsaved))
    raise
  except OSError as error:  # An output's or the record's write: the disk, not the code.
    if error.errno not in STORAGE_ERRNOS:
      raise
    print(saved_report(s.logdir, record.saved, record.unsaved))
    raise StorageError(
        f'Could not write {error.filename or s.logdir} ({error.strerror}); the run '
        'stopped. Free space (or fix the permissions) and run again with --logdir '
        f'{s.logdir} to resume.') from error
  step = f' at step {record.saved[-1][1]:,}' if record.saved else ''
  print(f'Finished{step}.')
  print(saved_report(s.logdir, record.saved, record.unsaved))


def _stopped(how, logdir, record, code):
  print(f'Stopped ({how}).')
  print(saved_report(logdir, record.saved, record.unsaved))
  raise SystemExit(code)


def saved_report(logdir, saved, unsaved='stopped before training began'):
  """Lines naming what a run left in `logdir`: its last checkpoint (or why it wrote
  none, `unsaved`) and its metrics."""
  if saved:
    path, step = saved[-1]
    lines = [f'Checkpoint: {path} (step {step:,}); run again with --logdir {logdir} '
             'to resume.']
  else:
    lines = [f'Checkpoint: none written ({unsaved}).']
  metrics = logdir / 'metrics.jsonl'
  if metrics.exists():
    lines.append(f'Metrics: {metrics} (dreamkit plot {logdir})')
  if any(logdir.glob('events.out.tfevents.*')):
    lines.append(f'TensorBoard: tensorboard --logdir {logdir}')
  return '\n'.join(lines)


def _train(s, stack, record):
  # 1. Check before spending: the envs, then the agent from their spaces (every
  # constructor checks its values), before the logdir exists. A typo or a wrong env
  # name costs seconds and leaves no half-made logdir; `config --check` builds the same.
  restore_lib.prepare(s)  # Seeds (initial weights included), precision, eager mode.
  rng = checkpoint_lib.numpy_rng(s.seed)
  if s.offline:  # Episodes from a folder, read-only; envs only to evaluate.
    replay = offline_lib.open_data(s)
    stack.callback(replay.close)
    train_envs, spaces = None, _offline_spaces(s, replay)
  else:
    train_envs = spaces = stack.enter_context(_make_envs(s, s.envs, s.seed))
  counters = Counters.create()
  agent = agent_lib.build(
      spaces.obs_space, spaces.act_space, counters.step, s.world_model,
      s.actor_critic, s.explorer, s.agent)
  agent.check_batch_length(s.batch_length)

  # 2. The record of the run.
  logdir = s.logdir
  created = _first_missing(logdir)  # Removed again if a value is refused below.
  logdir.mkdir(parents=True, exist_ok=True)
  checkpoints = logdir / 'checkpoints'
  if not (checkpoints / 'checkpoint').exists():
    # A resumed run keeps the config.gin it was started with until its checkpoint
    # is restored: a refused restore must leave the run's own record in place.
    config_lib.save(logdir, 'config.gin')
  record_lib.write(logdir, s.loaded)  # plugins.json, and copies of the plugin files
  signals = _Signals(stack)  # SIGTERM and Ctrl-C; a save finishes first.

  # What has to be closed at exit (after the envs); the stack closes it in reverse
  # order. These write into the logdir: one that refuses its values removes a logdir
  # this run created.
  with _removed_on_error(created):
    outputs = [stack.enter_context(contextlib.closing(
        outputs_lib.registry.build(make, 'Pipeline.outputs', logdir)))
               for make in s.outputs]
    if not s.offline:
      replay = replays_lib.registry.build(s.replay, 'Pipeline.replay', logdir / 'replay')
      stack.callback(replay.close)
  for output in outputs:
    output.text('config', config_lib.resolved_str())

  # 3. The driver; replay, counters and rows subscribe to it.
  rows = Rows(outputs, counters, spaces.action_repeat, s.steps)
  env_restarts = [0]

  def count_restart(index, reason):  # A failed env copy was restarted (docs/envs.md).
    del index, reason
    env_restarts[0] += 1
    step = int(counters.step)
    rows.emit(step, {'env_restarts': env_restarts[0], 'frames': rows.frames(step)})

  def count_step(transition, worker):
    del worker
    if not transition['is_first']:
      counters.step.assign_add(1)
      rows.progress()

  def count_episode(episode, worker):
    del worker
    counters.episodes.assign_add(1)
    rows.episode(episode)

  driver = None
  if train_envs is not None:
    train_envs.on_restart(count_restart)
    driver = Driver(train_envs)
    driver.on_step(replay.add_step)
    driver.on_step(count_step)
    driver.on_episode(count_episode)

  # Counters never go backwards: a logdir's rows and stored episodes show how far
  # its run got (a SIGKILL can come before any checkpoint, or long after the last).
  # An offline run's episodes are not its own steps.
  reached = recorded_counters(logdir / 'metrics.jsonl', {} if s.offline else replay.stats)
  resumed = (checkpoints / 'checkpoint').exists()
  if not resumed and reached['step']:
    counters.advance_to(reached)
    print(f"Resuming without a checkpoint: the replay and metrics reach step "
          f"{reached['step']:,} ({int(replay.stats['episodes'])} episodes kept); the "
          'counters continue from there and the agent trains from fresh weights on '
          'the kept replay.')

  # 4. Prefill: the replay of a resumed run is already filled.
  if not resumed and driver is not None:
    missing = s.prefill - int(replay.stats['steps'])
    if missing > 0:
      record.unsaved = ('stopped during the prefill, before the first update; the '
                        'episodes collected are kept and a rerun continues from them')
      print(f'Prefilling {missing} agent steps with a random policy.')
      with rows.prefilling(missing):  # The status line shows the prefill's progress.
        driver(RandomPolicy(train_envs.act_space, seed=s.seed), steps=missing)
      driver.reset()  # The agent's policy state starts fresh after prefill.

  # 5. Keras builds the agent's variables lazily, so one update builds them all.
  dataset = iter(replay.dataset(s.batch_size, s.batch_length))
  train_state = None

  optimizers = agent.optimizers()
  checkpoint = None  # Made after the first update, which builds the variables.

  def update():
    nonlocal train_state
    train_state, metrics = agent.train(next(dataset), train_state)
    counters.updates.assign_add(1)
    rows.update(metrics)
    if s.max_nonfinite:
      for optimizer in optimizers:
        if int(optimizer.nonfinite) >= s.max_nonfinite:
          raise _diverged(optimizer, metrics, counters, s.max_nonfinite, record,
                          checkpoint.restored if checkpoint else None)

  def nonfinite():
    """The optimizers whose last update was not finite (a streak is running)."""
    return [optimizer for optimizer in optimizers if int(optimizer.nonfinite)]

  def save():
    """A checkpoint, unless the weights are those of a running non-finite streak
    or were saved already at this step; a stop meanwhile waits for it."""
    if nonfinite():
      print(f'Not saving at step {int(counters.step):,}: the last update of '
            f"{', '.join(o.loss_name for o in nonfinite())} was not finite.")
      return
    if record.saved and tuple(last_save) == (int(counters.step), int(counters.updates)):
      return
    with signals.deferred():
      rows.flush()  # The metrics never lag behind the checkpoint.
      rows.record_wall_time()  # The checkpoint carries the seconds trained so far.
      record.saved.append((checkpoint.save(), int(counters.step)))
      last_save[:] = int(counters.step), int(counters.updates)

  last_save = [None, None]

  def save_at_exit(kind, error, traceback):
    del kind, traceback
    if isinstance(error, Diverged):
      return False  # The last good checkpoint stays the latest.
    try:
      save()
    except StorageError as failure:
      if error is None:
        raise
      record.unsaved = f'the save at exit failed: {failure}'
    return False

  # A stop during the first update (minutes with a large model) waits for it to
  # finish, for a restore to bring back the checkpoint's state, and then saves.
  record.unsaved = 'stopped before the first update finished'
  with signals.deferred():
    update()
    config_lib.save(logdir, 'operative_config.gin', operative=True)
    config_lib.report_unused(logdir, parallel=s.parallel)

    # 6. Restore, or start.
    checkpoint = checkpoint_lib.Checkpoint(
        checkpoints, agent, rng, keep=s.keep_checkpoints, **counters.as_dict())
    restored = checkpoint.restore()  # A UserError if another config wrote it.
    if restored:
      config_lib.save(logdir, 'config.gin')
      print(f'Resumed from {checkpoint.restored} at step {int(counters.step):,}.')
      if 'wall_time' in checkpoint.missing_counters:
        print('The checkpoint predates the saved wall_time: it counts from this resume.')
      before = int(counters.step)
      if 'step' in counters.advance_to(reached):
        print(f"The logdir's metrics and replay go on past the checkpoint, to step "
              f"{int(counters.step):,}: the counters continue from there, the weights "
              f'from step {before:,}.')

    # 7. From here on a stop (any exception included) saves the agent first.
    stack.push(save_at_exit)
  if not restored:
    for _ in range(s.pretrain):
      update()
  step = int(counters.step)
  should_train = Every(s.train_every, step)
  should_log = Every(s.log_every, step)
  should_video = Every(s.video_every, step)
  should_save = Every(s.checkpoint_every, step)

  def policy(obs, state):
    explore = not s.expl_until or int(counters.step) < s.expl_until
    return agent.policy(obs, state, mode='explore' if explore else 'train')

  def train_and_log(step):
    if should_train(step):
      for _ in range(s.train_steps):
        update()
    if should_log(step):
      rows.write(step, replay.stats['steps'])
    if should_video(step):
      for name, video in agent.report(next(dataset)).items():
        frames = video_lib.as_video(np.asarray(video))  # [B, T, ...] side by side
        for output in outputs:
          output.video(step, name, frames)
    if should_save(step):
      save()

  def offline_steps(steps):
    """Offline, the counter advances without an env (runner/offline.py)."""
    for _ in range(steps):
      counters.step.assign_add(1)
      rows.progress()
      train_and_log(int(counters.step))

  if driver is not None:
    driver.on_step(lambda transition, worker: None if transition['is_first']
                   else train_and_log(int(counters.step)))
  should_policy_video = Every(s.video_every, step)

  def evaluate():
    """Fresh env copies and a policy seeded from (seed, step): `dreamkit eval` of
    this step's checkpoint plays the same episodes (runner/evaluation.py)."""
    if not s.eval_eps:
      return
    step = int(counters.step)
    env_seed, policy_seed, train_seed = evaluation.seeds(s.seed, step)
    with _make_envs(s, s.eval_envs, env_seed) as envs:
      envs.on_restart(count_restart)
      episodes = evaluation.play(agent, envs, s.eval_eps, policy_seed)
    tf.random.set_seed(train_seed)  # Training draws from a stream of its own again.
    _report_evaluation(agent, episodes, rows)
    if should_policy_video(step):  # A real episode, beside the open-loop predictions.
      for name, frames in evaluation.policy_videos(agent, episodes[0]).items():
        for output in outputs:
          output.video(step, name, video_lib.as_video(frames))

  # As the reference: evaluate before collecting, then every `eval_every` steps.
  evaluate()
  while int(counters.step) < s.steps:
    remaining = s.steps - int(counters.step)
    steps = min(remaining, s.eval_every) if s.eval_eps else remaining
    if driver is None:
      offline_steps(steps)
    else:
      driver(policy, steps=steps)
    evaluate()
  rows.write(int(counters.step), replay.stats['steps'])


@contextlib.contextmanager
def _removed_on_error(created):
  """Removes the folder `created` (the outermost one this run made for its logdir,
  `logdir/` itself for a default logdir; None: none) if the block raises a UserError:
  a refused value leaves no half-made logdir behind."""
  try:
    yield
  except UserError:
    if created is not None:
      shutil.rmtree(created, ignore_errors=True)
    raise


def _first_missing(path):
  """The outermost folder of `path` that does not exist yet; None if `path` exists."""
  missing = None
  for folder in (path, *path.parents):
    if folder.exists():
      break
    missing = folder
  return missing


def _make_envs(s, num, seed):
  # Through gin: `envs.ParallelEnvs.timeout`, `.max_restarts` (docs/envs.md) apply.
  if s.parallel:
    return gin.get_configurable(envs_lib.ParallelEnvs)(
        s.task, num, gin_config=gin.config_str(), plugins=s.loaded.plugins, seed=seed)
  return gin.get_configurable(envs_lib.SerialEnvs).from_task(s.task, num, seed=seed)


def _offline_spaces(s, replay):
  """The spaces of an offline run: its eval env's (checked against the data) when it
  evaluates, else the data's."""
  signature = offline_lib.signature(replay)
  if not s.eval_eps:
    return offline_lib.spaces_from_data(offline_lib.directory(s), signature)
  with _make_envs(s, 1, s.seed) as envs:
    offline_lib.check_against_env(envs, signature, offline_lib.directory(s))
    return offline_lib.Spaces(envs.obs_space, envs.act_space, envs.action_repeat)


def _report_evaluation(agent, episodes, rows):
  """A row of the episodes' returns and of what the agent believed along them
  (dreamkit.diagnostics, as `eval_<name>`)."""
  reports = [diagnostics.episode_report(agent.world_model, agent.actor_critic, episode)
             for episode in episodes]
  beliefs = {f'eval_{key}': value
             for key, value in diagnostics.summarize(reports).items()}
  rows.evaluation(*evaluation.returns(episodes), beliefs)


class _Signals:
  """SIGTERM and Ctrl-C as exceptions (Interrupted, KeyboardInterrupt), raised where
  the main thread is, except inside `deferred()` blocks (a save, the first update):
  those finish first and the stop is raised at their end. A second signal while one
  waits stops at once. The previous handlers are put back when `stack` closes."""

  def __init__(self, stack):
    self._depth = 0
    self._pending = None
    for signum in (signal.SIGTERM, signal.SIGINT):
      previous = signal.signal(signum, self._handle)
      stack.callback(signal.signal, signum, previous)

  def _handle(self, signum, frame):
    del frame
    error = Interrupted if signum == signal.SIGTERM else KeyboardInterrupt
    if self._depth and self._pending is None:
      self._pending = error
      return
    raise error()

  @contextlib.contextmanager
  def deferred(self):
    self._depth += 1
    try:
      yield
    finally:
      self._depth -= 1
    if not self._depth and self._pending is not None:
      error, self._pending = self._pending, None
      raise error()


def _diverged(optimizer, metrics, counters, limit, record, restored):
  """The Diverged error for `optimizer`'s streak; notes why nothing is saved."""
  loss = optimizer.loss_name
  value = float(np.mean(metrics[loss])) if loss in metrics else float('nan')
  if record.saved:
    kept = f'the last good checkpoint is {record.saved[-1][0]} (step {record.saved[-1][1]:,})'
  elif restored:
    kept = f'the last good checkpoint is {restored}, the one this run resumed from'
  else:
    kept = 'no checkpoint was written before it'
  record.unsaved = f'the weights diverged; {kept}'
  return Diverged(
      f'Training diverged: {loss} (or its gradients) was not finite in '
      f'{int(optimizer.nonfinite)} updates in a row (Pipeline.max_nonfinite = {limit}; '
      f'the last {loss} = {value}) at step {int(counters.step):,}, update '
      f'{int(counters.updates):,}. The run stopped without saving these weights; '
      f'{kept}. Lower the learning rate, look for NaN in the observations and '
      'rewards, or raise Pipeline.max_nonfinite.')
