"""The pipeline: the one gin-configurable root, holding a run's settings.

    dreamkit run pipelines/atari_dreamerv2.gin   ->   Pipeline(logdir).run()

`Pipeline` only holds and checks settings; `run()` hands them to the training loop in
`dreamkit/runner/train.py`, which reads top to bottom. All step counts are agent steps
(env steps after action repeat).
"""

import re
import time
from pathlib import Path

import gin

from dreamkit import config as config_lib
from dreamkit import plugins as plugins_lib
from dreamkit import precision as precision_lib
from dreamkit import validate
from dreamkit.runner import train  # Registers Agent, WorldModel, ActorCritic with gin.

EXIT_CTRL_C, EXIT_SIGTERM = train.EXIT_CTRL_C, train.EXIT_SIGTERM


@gin.configurable
class Pipeline:
  """The settings of one training run; `run()` trains.

  The slots (`replay` ... `agent`) are factories, bound in
  pipelines/dreamerv2_defaults.gin; the loop calls them as shown.

  Args:
    logdir: where the run writes; an existing one is resumed. None: a fresh folder
      `./logdir/<task>-seed<seed>-<time>`.
    loaded: the `config.Loaded` the CLI parsed (files, bindings, plugins), recorded
      in the logdir and handed to env worker processes.
    task: 'prefix:name', e.g. 'atari:pong', 'dmc:walker_walk', 'gym:CartPole-v1'.
    replay: replay store factory, `replay(directory)`.
    outputs: metric sink factories, each `output(logdir)`.
    world_model: `world_model(obs_space, act_space)`, e.g. @WorldModel.
    actor_critic: `actor_critic(act_space, step)`, the task behaviour, e.g. @ActorCritic.
    explorer: `explorer(world_model, actor_critic, step)`, from the `explorers` registry.
    agent: `agent(world_model, actor_critic, explorer)`, e.g. @Agent.
    steps: agent-step budget (env steps after action repeat).
    envs / eval_envs: env copies for training / evaluation, stepped one after another
      in this process, or concurrently in worker processes with `parallel`.
    parallel: step the env copies in `spawn` worker processes.
    prefill: random-policy agent steps collected before training.
    pretrain: updates after the first (building) one, before collecting again.
    train_every / train_steps: every `train_every` agent steps, a round of
      `train_steps` updates (world model, then actor-critic). The metric `updates`
      counts the updates of the whole run.
    eval_every / eval_eps: evaluate the actor's mode every `eval_every` steps for
      `eval_eps` episodes (0 disables evaluation).
    log_every: agent steps between metrics rows.
    video_every: agent steps between open-loop prediction videos and, at the next
      evaluation, a video of the agent playing its first episode (0: never).
    expl_until: collect with the explorer (policy mode 'explore') until this agent
      step, then with the task actor; 0: for the whole run, as the reference does.
      With `Greedy` both are the task actor.
    checkpoint_every: agent steps between checkpoints (also saved at exit).
    keep_checkpoints: how many of the latest checkpoints are kept (a resume whose
      latest cannot be read falls back to the one before).
    max_nonfinite: stop the run (without saving the weights that diverged) after
      this many updates in a row whose loss or gradients were not finite (under
      float16: once the loss scale is at its floor); 0: never stop.
    batch_size / batch_length: training chunks [B, T].
    precision: 32, 16 (mixed float16; bfloat16 or float32 on a CPU) or 'bf16'.
    eager: run every tf.function eagerly, for line-by-line debugging.
    seed: seeds TF, NumPy and the env copies (copy i gets seed + i).
    offline: train from a folder of episodes without stepping an env
      (runner/offline.py); evaluation still runs on `task` unless `eval_eps` is 0.
    offline_data: that folder, any dreamkit HDF5 store (another run's replay/),
      opened read-only; None: this run's own replay/.
  """

  def __init__(
      self, replay, outputs, world_model, actor_critic, explorer, agent,
      logdir=None, loaded=None, task=gin.REQUIRED, steps=int(1e8), envs=1,
      eval_envs=1, parallel=False, prefill=10000, pretrain=1, train_every=5,
      train_steps=1, eval_every=int(1e5), eval_eps=1, log_every=int(1e4),
      video_every=int(1e5), expl_until=0, checkpoint_every=int(1e4), keep_checkpoints=2,
      max_nonfinite=100, batch_size=16, batch_length=50, precision=16, eager=False, seed=0,
      offline=False, offline_data=None):
    args = validate.Arguments(self)
    self.task = task
    self.logdir = Path(logdir) if logdir else _fresh_logdir(task, seed)
    self.loaded = loaded or config_lib.Loaded([], [], plugins_lib.loaded_files())
    self.replay, self.outputs = replay, list(outputs)
    self.world_model, self.actor_critic = world_model, actor_critic
    self.explorer, self.agent = explorer, agent
    self.steps = args.positive_int(steps, 'steps')
    self.envs = args.positive_int(envs, 'envs')
    self.eval_eps = args.non_negative_int(eval_eps, 'eval_eps')
    # 0 is fine while evaluation is off (eval_eps = 0), and only then.
    count = args.positive_int if self.eval_eps else args.non_negative_int
    self.eval_envs = count(eval_envs, 'eval_envs')
    self.eval_every = count(eval_every, 'eval_every')
    self.parallel = args.boolean(parallel, 'parallel')
    self.prefill = args.non_negative_int(prefill, 'prefill')
    self.pretrain = args.non_negative_int(pretrain, 'pretrain')
    self.train_every = args.positive_int(train_every, 'train_every')
    self.train_steps = args.non_negative_int(train_steps, 'train_steps')
    self.log_every = args.positive_int(log_every, 'log_every')
    self.video_every = args.non_negative_int(video_every, 'video_every')
    self.expl_until = args.non_negative_int(expl_until, 'expl_until')
    self.checkpoint_every = args.positive_int(checkpoint_every, 'checkpoint_every')
    self.keep_checkpoints = args.positive_int(keep_checkpoints, 'keep_checkpoints')
    self.max_nonfinite = args.int_at_least(
        max_nonfinite, 'max_nonfinite', 0, '(0 to never stop, else updates in a row)')
    self.batch_size = args.positive_int(batch_size, 'batch_size')
    self.batch_length = args.positive_int(batch_length, 'batch_length')
    self.precision = precision_lib.check(precision, 'Pipeline.precision')
    self.eager = args.boolean(eager, 'eager')
    self.seed = args.non_negative_int(seed, 'seed')
    self.offline = args.boolean(offline, 'offline')
    self.offline_data = None if offline_data is None else args.text(
        str(offline_data), 'offline_data')

  def run(self):
    """Trains until `steps` agent steps; Ctrl-C or SIGTERM saves and exits 130 / 143."""
    train.run(self)


def _fresh_logdir(task, seed):
  """`logdir/<task>-seed<seed>-<time>`: runs of several seeds sort side by side."""
  name = re.sub(r'[^A-Za-z0-9_.-]+', '_', str(task)).strip('_') or 'run'
  return Path('logdir') / f"{name}-seed{int(seed)}-{time.strftime('%Y%m%d-%H%M%S')}"
