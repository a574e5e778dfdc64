"""DreamerV2's training loop, as one function of locals.

    train.run(settings)     # settings: a Pipeline (the gin root), see pipeline.py

In the order the code runs it:

 1. The logdir, the run's record (config.gin, plugins.json), seeds, precision.
 2. Outputs, train and eval envs, the replay store: each closed at exit, in reverse.
 3. The driver and its subscribers: replay, the step counter, episode rows.
 4. Prefill with a random policy (a fresh run only; a resumed run has its replay).
 5. The dataset, the agent, one update that builds every variable.
 6. Restore the checkpoint, or start: write config.gin and pretrain.
 7. From here a stop saves a checkpoint. Evaluate, then alternate collecting and
    training until the step budget, evaluating every `eval_every` steps.

All step counts are agent steps (env steps after action repeat). Ctrl-C or SIGTERM
saves and exits with 130 or 143, so a scheduler can tell a stopped run from a
finished one.
"""

import contextlib
import json
import signal

import gin
import numpy as np
import tensorflow as tf

from dreamkit import agent as agent_lib
from dreamkit import config as config_lib
from dreamkit import diagnostics
from dreamkit import envs as envs_lib
from dreamkit import outputs as outputs_lib
from dreamkit import precision as precision_lib
from dreamkit import replay as replays_lib
from dreamkit.behavior.exploration import RandomPolicy
from dreamkit.outputs import video as video_lib
from dreamkit.runner import checkpoint as checkpoint_lib
from dreamkit.runner.driver import Driver
from dreamkit.runner.rows import Counters, Rows
from dreamkit.schedules import Every

EXIT_CTRL_C = 128 + signal.SIGINT     # 130
EXIT_SIGTERM = 128 + signal.SIGTERM   # 143


class Interrupted(Exception):
  """SIGTERM arrived: stop like Ctrl-C, saving a checkpoint first."""


def run(s):
  """Trains as the settings `s` say; a stop by signal saves, then exits 130 / 143.

  The last lines say how the run ended and what it saved where (printed after the
  outputs closed, so below the terminal's last status line).
  """
  saved = []  # (checkpoint path, agent step) of each save
  try:
    with contextlib.ExitStack() as stack:
      _train(s, stack, saved)
  except KeyboardInterrupt:
    _stopped('Ctrl-C', s.logdir, saved, EXIT_CTRL_C)
  except Interrupted:
    _stopped('SIGTERM', s.logdir, saved, EXIT_SIGTERM)
  step = f' at step {saved[-1][1]:,}' if saved else ''
  print(f'Finished{step}.')
  print(saved_report(s.logdir, saved))


def _stopped(how, logdir, saved, code):
  print(f'Stopped ({how}).')
  print(saved_report(logdir, saved))
  raise SystemExit(code)


def saved_report(logdir, saved):
  """Lines naming what a run left in `logdir`: its last checkpoint and its metrics."""
  if saved:
    path, step = saved[-1]
    lines = [f'Checkpoint: {path} (step {step:,}); run again with --logdir {logdir} '
             'to resume.']
  else:
    lines = ['Checkpoint: none written (stopped before training began).']
  metrics = logdir / 'metrics.jsonl'
  if metrics.exists():
    lines.append(f'Metrics: {metrics} (dreamkit plot {logdir})')
  if any(logdir.glob('events.out.tfevents.*')):
    lines.append(f'TensorBoard: tensorboard --logdir {logdir}')
  return '\n'.join(lines)


def _train(s, stack, saved):
  # 1. The record of the run, before anything can fail half-way.
  logdir = s.logdir
  logdir.mkdir(parents=True, exist_ok=True)
  checkpoints = logdir / 'checkpoints'
  if not (checkpoints / 'checkpoint').exists():
    # A resumed run keeps the config.gin it was started with until its checkpoint
    # is restored: a refused restore must leave the run's own record in place.
    config_lib.save(logdir, 'config.gin')
  (logdir / 'plugins.json').write_text(json.dumps(s.loaded.plugins, indent=1))
  previous = signal.signal(signal.SIGTERM, _raise_interrupted)
  stack.callback(signal.signal, signal.SIGTERM, previous)
  tf.random.set_seed(s.seed)
  rng = checkpoint_lib.numpy_rng(s.seed)
  precision_lib.set_precision(s.precision)  # Before any layer is built.
  tf.config.run_functions_eagerly(s.eager)

  # 2. What has to be closed at exit; the stack closes it in reverse order.
  outputs = [stack.enter_context(contextlib.closing(
      outputs_lib.registry.build(make, 'Pipeline.outputs', logdir))) for make in s.outputs]
  for output in outputs:
    output.text('config', config_lib.resolved_str())
  train_envs = stack.enter_context(_make_envs(s, s.envs, s.seed))
  eval_envs = stack.enter_context(_make_envs(s, s.eval_envs, s.seed + 1000)) \
      if s.eval_eps else None
  replay = replays_lib.registry.build(s.replay, 'Pipeline.replay', logdir / 'replay')
  stack.callback(replay.close)

  # 3. The driver; replay, counters and rows subscribe to it.
  counters = Counters.create()
  rows = Rows(outputs, counters, train_envs.action_repeat, s.steps)
  driver = Driver(train_envs)
  driver.on_step(replay.add_step)

  def count_restart(index, reason):  # A failed env copy was restarted (docs/envs.md).
    del index, reason
    step = int(counters.step)
    rows.emit(step, {'env_restarts': sum(envs.restarts for envs in (train_envs, eval_envs)
                                         if envs is not None), 'frames': rows.frames(step)})

  for envs in (train_envs, eval_envs):
    if envs is not None:
      envs.on_restart(count_restart)

  def count_step(transition, worker):
    del worker
    if not transition['is_first']:
      counters.step.assign_add(1)
      rows.progress()

  def count_episode(episode, worker):
    del worker
    counters.episodes.assign_add(1)
    rows.episode(episode)

  driver.on_step(count_step)
  driver.on_episode(count_episode)

  # 4. Prefill: the replay of a resumed run is already filled.
  if not (checkpoints / 'checkpoint').exists():
    missing = s.prefill - int(replay.stats['steps'])
    if missing > 0:
      print(f'Prefilling {missing} agent steps with a random policy.')
      with rows.prefilling(missing):  # The status line shows the prefill's progress.
        driver(RandomPolicy(train_envs.act_space, seed=s.seed), steps=missing)
      driver.reset()  # The agent's policy state starts fresh after prefill.

  # 5. The agent; Keras builds variables lazily, so one update builds them all.
  dataset = iter(replay.dataset(s.batch_size, s.batch_length))
  agent = agent_lib.build(
      train_envs.obs_space, train_envs.act_space, counters.step, s.world_model,
      s.actor_critic, s.explorer, s.agent)
  train_state = None

  def update():
    nonlocal train_state
    train_state, metrics = agent.train(next(dataset), train_state)
    counters.updates.assign_add(1)
    rows.update(metrics)

  update()
  config_lib.save(logdir, 'operative_config.gin', operative=True)
  config_lib.report_unused(logdir, parallel=s.parallel)

  # 6. Restore, or start.
  checkpoint = checkpoint_lib.Checkpoint(
      checkpoints, agent, rng, keep=s.keep_checkpoints, **counters.as_dict())
  if checkpoint.restore():  # A UserError if another config wrote it.
    config_lib.save(logdir, 'config.gin')
    print(f'Resumed from {checkpoint.latest} at step {int(counters.step)}.')
    if 'wall_time' in checkpoint.missing_counters:
      print('The checkpoint predates the saved wall_time: it counts from this resume.')
  else:
    for _ in range(s.pretrain):
      update()

  # 7. From here on a stop (any exception included) saves the agent first.
  def save():
    rows.flush()  # The metrics never lag behind the checkpoint.
    rows.record_wall_time()  # The checkpoint carries the seconds trained so far.
    saved.append((checkpoint.save(), int(counters.step)))

  stack.callback(save)
  step = int(counters.step)
  should_train = Every(s.train_every, step)
  should_log = Every(s.log_every, step)
  should_video = Every(s.video_every, step)
  should_save = Every(s.checkpoint_every, step)

  def policy(obs, state):
    explore = not s.expl_until or int(counters.step) < s.expl_until
    return agent.policy(obs, state, mode='explore' if explore else 'train')

  def train_and_log(transition, worker):
    del worker
    if transition['is_first']:
      return
    step = int(counters.step)
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

  driver.on_step(train_and_log)

  def evaluate():
    if eval_envs is not None:
      _evaluate(agent, eval_envs, s.eval_eps, rows)

  # As the reference: evaluate before collecting, then every `eval_every` steps.
  evaluate()
  while int(counters.step) < s.steps:
    remaining = s.steps - int(counters.step)
    driver(policy, steps=min(remaining, s.eval_every) if eval_envs else remaining)
    evaluate()
  rows.write(int(counters.step), replay.stats['steps'])


def _make_envs(s, num, seed):
  # Through gin: `envs.ParallelEnvs.timeout`, `.max_restarts` (docs/envs.md) apply.
  if s.parallel:
    return gin.get_configurable(envs_lib.ParallelEnvs)(
        s.task, num, gin_config=gin.config_str(), plugins=s.loaded.plugins, seed=seed)
  return gin.get_configurable(envs_lib.SerialEnvs).from_task(s.task, num, seed=seed)


def _evaluate(agent, envs, episodes, rows):
  """`episodes` episodes with the actor's mode, a row of their returns and of what
  the agent believed along them (dreamkit.diagnostics, as `eval_<name>`)."""
  driver = Driver(envs)
  finished = []
  driver.on_episode(lambda episode, worker: finished.append(episode))
  driver(lambda obs, state: agent.policy(obs, state, mode='eval'), episodes=episodes)
  # Envs run in lock step, so several copies may finish more than `episodes`.
  finished = finished[:episodes]
  reports = [diagnostics.episode_report(agent.world_model, agent.actor_critic, episode)
             for episode in finished]
  beliefs = {f'eval_{key}': value
             for key, value in diagnostics.summarize(reports).items()}
  rows.evaluation([float(np.sum(ep['reward'])) for ep in finished],
                  [len(ep['reward']) - 1 for ep in finished], beliefs)


def _raise_interrupted(signum, frame):
  del signum, frame
  raise Interrupted()
