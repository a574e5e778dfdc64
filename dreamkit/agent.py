"""The DreamerV2 agent: a world model, the task actor-critic and an explorer, together."""

import gin
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from dreamkit import optim
from dreamkit import registry
from dreamkit import validate
from dreamkit.behavior import exploration
from dreamkit.behavior.actor_critic import ActorCritic
from dreamkit.behavior.exploration import Explorer
from dreamkit.errors import ConfigError
from dreamkit.networks import distributions as dists
from dreamkit.spaces import action_size, is_discrete
from dreamkit.world_model import WorldModel

tfd = tfp.distributions
MODES = ('train', 'eval', 'explore')


class Agent(keras.layers.Layer):
  """Acts in the environment and learns from replayed batches.

      agent = Agent(world_model, actor_critic, explorer)   # parts built by the caller
      outputs, state = agent.policy(obs, state, mode)       # obs {key: [N, ...]} -> [N, A]
      state, metrics = agent.train(batch, state)            # batch {key: [B, T, ...]}
      videos = agent.report(batch)                          # {'openl_image': [B', T, 3H, W, C]}
      agent.state()                                         # the named variables to save

  `policy` filters each observation into the latent state (resetting the rows whose
  `is_first` is set) and samples the task actor ('train'), takes its mode ('eval')
  or samples the explorer's actor ('explore'). Its state is (latent, previous
  action). `train` runs one world model step, then the actor-critic on trajectories
  imagined from every posterior state, then the explorer's own step; its state is
  the last posterior, to continue the next batch from.

  Args:
    world_model: a WorldModel.
    actor_critic: the task ActorCritic (its action space is the agent's).
    explorer: an `explorers` component built for this world model and actor-critic.
    expl_noise: action noise in 'train' and 'explore' modes (one-hot: probability of
      a uniform action; Box: Normal std, clipped to [-1, 1]).
    eval_noise: action noise in 'eval' mode.
    compile: wrap `policy` and `train` in tf.function (False: run eagerly).
    jit_compile: compile `train` (and, unless `policy_jit_compile` says otherwise,
      `policy`) with XLA (slower on CPU; see docs/runner.md).
    policy_jit_compile: compile `policy` with XLA; None: as `jit_compile`. The
      policy step at batch 1 is many small ops, where XLA's fusion pays even on a
      CPU (docs/runner.md has the measurements). Under XLA the policy's samples
      ignore TensorFlow's seed: evaluations no longer replay exactly.
  """

  def __init__(self, world_model, actor_critic, explorer, expl_noise=0.0,
               eval_noise=0.0, compile=True, jit_compile=False, policy_jit_compile=None):  # pylint: disable=redefined-builtin
    super().__init__(name='agent')
    args = validate.Arguments(self)
    for name, part, kind in (('world_model', world_model, WorldModel),
                             ('actor_critic', actor_critic, ActorCritic),
                             ('explorer', explorer, Explorer)):
      if not isinstance(part, kind):
        raise ConfigError(f'Agent: {name} must be a {kind.__name__}, got {part!r}.')
    compile = args.boolean(compile, 'compile')  # pylint: disable=redefined-builtin
    jit_compile = args.boolean(jit_compile, 'jit_compile')
    if jit_compile and keras.mixed_precision.global_policy().compute_dtype == 'float16':
      raise ConfigError(
          'Agent.jit_compile = True does not work with precision 16 (mixed_float16): '
          "Keras' LossScaleOptimizer fails inside XLA. Set Pipeline.precision = 'bf16' "
          'or 32, or Agent.jit_compile = False.')
    policy_jit_compile = jit_compile if policy_jit_compile is None else args.boolean(
        policy_jit_compile, 'policy_jit_compile')
    self.world_model = world_model
    self.actor_critic = actor_critic
    self.explorer = explorer
    self.act_space = actor_critic.act_space
    # One-hot actions: the probability of a uniform action; Box: a Normal std.
    noise = args.fraction if is_discrete(self.act_space) else args.non_negative
    self.expl_noise = noise(expl_noise, 'expl_noise')
    self.eval_noise = noise(eval_noise, 'eval_noise')
    self.image_keys = [
        key for key, shape in world_model.shapes.items() if len(shape) == 3]
    self._compile, self._policy_jit = bool(compile), bool(policy_jit_compile)
    self._created = 0  # 1: create_variables made the networks', 2: the optimizers' too.
    if compile:
      self._policy_fn = self._traced(self._policy, policy_jit_compile)
      self._train_fn = self._traced(self._train, jit_compile)
    else:
      self._policy_fn = self._policy
      self._train_fn = self._train

  @staticmethod
  def _traced(function, jit_compile):
    # AutoGraph off: rewriting the Python source of every function an update calls
    # was 45% of the Atari update's trace (cProfile, benchmarks/atari_speed.py's
    # first update). Components branch and loop on tensors with tf.cond, tf.scan and
    # tf.while_loop, never with Python `if`/`for` on a tensor (docs/plugins.md).
    return tf.function(function, jit_compile=jit_compile, autograph=False)

  def state(self):
    """The named variables a checkpoint holds (runner/checkpoint.py)."""
    return {'world_model': self.world_model, 'actor_critic': self.actor_critic,
            'explorer': self.explorer.state()}

  def optimizers(self):
    """Every `optim.Optimizer` in the agent's state (the world model's, the actor's,
    the critic's, an explorer's own), in the order `state()` lists them."""
    found = []

    def visit(value):
      if isinstance(value, optim.Optimizer):
        if all(value is not other for other in found):
          found.append(value)
      elif isinstance(value, dict):
        for item in value.values():
          visit(item)
      elif isinstance(value, (list, tuple)):
        for item in value:
          visit(item)
      elif hasattr(value, 'state') and callable(value.state):
        visit(value.state())

    visit(self.state())
    return found

  def check_batch_length(self, length):
    """ConfigError when a part cannot train on chunks of `length` steps (each part
    with a `check_batch_length(length)` method is asked)."""
    for part in (self.world_model, self.actor_critic, self.explorer):
      if hasattr(part, 'check_batch_length'):
        part.check_batch_length(length)

  def create_variables(self, optimizers=True):
    """Creates the variables `policy` (and, with `optimizers`, `train`) use, if missing.

    A `tf.function` whose first call creates variables traces twice, and Keras creates
    a layer's variables at its first call: `policy` and `train` call this before
    their traced function, which then traces once (tests/test_traces.py). The world
    model runs eagerly on one step of zeros (WorldModel.create_variables), the actors
    and critics on its zero feature; the optimizers build their slots. Only eager ops
    run, so the traced functions' numbers do not change (tests/test_numerics.py).
    Each part builds its own (`create_variables` of the world model, the
    actor-critic and the explorer; an explorer without one traces twice).
    """
    level = 2 if optimizers else 1
    if self._created >= level or not self._compile or tf.config.functions_run_eagerly():
      return  # Done, or eager code, which creates variables as it goes.
    wm = self.world_model
    wm.create_variables(optimizers)
    feat = wm.dynamics.get_feat(wm.dynamics.initial(1))
    self.actor_critic.create_variables(feat, optimizers)
    create = getattr(self.explorer, 'create_variables', None)
    if create is not None:
      create(feat, optimizers)
    self._created = level

  def initial_state(self, count):
    """The policy state for `count` environments: zero latent and zero action."""
    latent = self.world_model.dynamics.initial(count)
    return latent, tf.zeros((count, action_size(self.act_space)), tf.float32)

  def policy(self, obs, state=None, mode='train'):
    """Actions for a batch of step dicts obs {key: [N, ...]}: ({'action': [N, A]}, state)."""
    return self._call_policy(self._policy_fn, obs, state, mode)

  def fresh_policy(self, mode):
    """`policy(obs, state)` in `mode` through a function traced anew: its random ops
    (the posterior's samples) start from TensorFlow's global seed as it is when it is
    first called, not where earlier calls of `policy` left them. Evaluations use it
    so that they can be replayed from a checkpoint (runner/evaluation.py)."""
    function = (self._traced(self._policy, self._policy_jit)
                if self._compile else self._policy)
    return lambda obs, state=None: self._call_policy(function, obs, state, mode)

  def _call_policy(self, function, obs, state, mode):
    if mode not in MODES:
      raise ValueError(f"Agent.policy: mode must be one of {MODES}, got '{mode}'.")
    obs = {
        key: tf.convert_to_tensor(value) for key, value in obs.items()
        if not key.startswith('log_')}
    if state is None:
      state = self.initial_state(int(obs['is_first'].shape[0]))
    self.create_variables(optimizers=False)
    return function(obs, state, mode)

  def _policy(self, obs, state, mode):
    latent, action = state
    wm = self.world_model
    data = wm.preprocess(obs)
    embed = wm.encoder(data)
    # obs_step zeroes the previous latent and action of rows that start an episode.
    latent, _ = wm.dynamics.obs_step(latent, action, embed, data['is_first'])
    feat = wm.dynamics.get_feat(latent)
    if mode == 'eval':
      action = self.actor_critic.actor(feat).mode()
      noise = self.eval_noise
    elif mode == 'explore':
      action = self.explorer.actor(feat).sample()
      noise = self.expl_noise
    else:
      action = self.actor_critic.actor(feat).sample()
      noise = self.expl_noise
    action = self._noise(tf.cast(action, tf.float32), noise)
    return {'action': action}, (latent, action)

  def _noise(self, action, amount):
    if not amount:
      return action
    if is_discrete(self.act_space):
      probs = amount / action.shape[-1] + (1 - amount) * action
      return tf.stop_gradient(dists.OneHotDist(probs=probs).sample())
    return tf.clip_by_value(tfd.Normal(action, amount).sample(), -1.0, 1.0)

  def train(self, batch, state=None):
    """One world model, actor-critic and explorer update: (state, metrics)."""
    batch = {
        key: tf.convert_to_tensor(value) for key, value in batch.items()
        if not key.startswith('log_')}
    if state is None:
      # A zero state is what the RSSM starts from; passing it keeps one trace.
      state = self.world_model.dynamics.initial(int(batch['is_first'].shape[0]))
    self.create_variables()
    return self._train_fn(batch, state)

  def _train(self, batch, state):
    wm = self.world_model
    metrics = {}
    state, outputs, model_metrics = wm.train(batch, state)
    metrics.update(model_metrics)
    start = outputs['post']
    metrics.update(self.actor_critic.train(
        wm, start, batch['is_terminal'], self.imagined_reward, self.replay_targets(batch)))
    if self.explorer.trains:
      data = wm.preprocess(batch)
      explorer_metrics = self.explorer.train(start, outputs, data)
      metrics.update({f'expl_{key}': value for key, value in explorer_metrics.items()})
    return state, metrics

  def imagined_reward(self, traj):
    """The reward head's mean on an imagined trajectory's features: what the
    actor-critic maximises."""
    return self.world_model.heads['reward'](traj['feat']).mean()

  def replay_targets(self, batch):
    """The replayed rewards and episode flags, preprocessed: what the replay critic
    loss (ActorCritic.replay_critic) learns from."""
    return self.world_model.preprocess(
        {key: batch[key] for key in ('reward', 'is_terminal', 'is_first')})

  def report(self, batch):
    """Open-loop predictions {'openl_<key>': [B', T, 3H, W, C]} for each image key."""
    self.create_variables(optimizers=False)
    return {f'openl_{key}': self.world_model.video_pred(batch, key)
            for key in self.image_keys}


gin.register(Agent, module='dreamkit')


def build(obs_space, act_space, step, world_model, actor_critic, explorer, agent=Agent):
  """Builds an agent from the factories bound to the Pipeline's slots.

      world_model(obs_space, act_space)              -> WorldModel
      actor_critic(act_space, step)                  -> ActorCritic
      explorer(world_model, actor_critic, step)      -> an `explorers` component
      agent(world_model, actor_critic, explorer)     -> Agent

  `step` is the int64 agent-step variable the schedules read.
  """
  wm = registry.build(world_model, 'Pipeline.world_model', WorldModel, obs_space, act_space)
  ac = registry.build(actor_critic, 'Pipeline.actor_critic', ActorCritic, act_space, step)
  behavior = exploration.registry.build(explorer, 'Pipeline.explorer', wm, ac, step)
  return registry.build(agent, 'Pipeline.agent', Agent, wm, ac, behavior)
