"""The DreamerV2 agent: world model, task actor-critic and exploration behaviour."""

import gin
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from dreamkit.behavior import exploration
from dreamkit.behavior.actor_critic import ActorCritic, action_size, check_space
from dreamkit.behavior.actor_critic import is_discrete
from dreamkit.errors import ConfigError
from dreamkit.networks import distributions as dists
from dreamkit.world_model import WorldModel

tfd = tfp.distributions
MODES = ('train', 'eval', 'explore')


class Agent(keras.layers.Layer):
  """Acts in the environment and learns from replayed batches.

      agent = Agent(obs_space, act_space, step)          # gin-configured
      outputs, state = agent.policy(obs, state, mode)    # obs {key: [N, ...]} -> [N, A]
      state, metrics = agent.train(batch, state)         # batch {key: [B, T, ...]}
      videos = agent.report(batch)                       # {'openl_image': [B', T, 3H, W, C]}

  `policy` filters each observation into the latent state (resetting the rows whose
  `is_first` is set) and samples the task actor ('train'), takes its mode ('eval')
  or samples the exploration actor ('explore'). Its state is (latent, previous
  action). `train` runs one world model step, then the actor-critic on trajectories
  imagined from every posterior state, then the exploration behaviour's own step;
  its state is the last posterior, to continue the next batch from.

  Args:
    obs_space: {key: gymnasium.spaces.Box} of a step dict.
    act_space: Discrete(n) or Box(-1, 1, (d,)).
    step: int64 tf.Variable, the agent step (drives the schedules).
    expl_behavior: exploration factory from the `objectives` registry, called as
      `(world_model, act_space, step)`, e.g. @objectives.Plan2Explore. None: Greedy
      (explore with the task actor).
    expl_noise: action noise in 'train' and 'explore' modes (one-hot: probability of
      a uniform action; Box: Normal std, clipped to [-1, 1]).
    eval_noise: action noise in 'eval' mode.
    compile: wrap `policy` and `train` in tf.function (False: run eagerly).
    jit_compile: compile them with XLA (slower on CPU; see STYLE.md).
  """

  def __init__(self, obs_space, act_space, step, expl_behavior=None, expl_noise=0.0,
               eval_noise=0.0, compile=True, jit_compile=False):  # pylint: disable=redefined-builtin
    super().__init__(name='agent')
    check_space(act_space, 'Agent')
    if jit_compile and keras.mixed_precision.global_policy().compute_dtype == 'float16':
      raise ConfigError(
          'Agent.jit_compile = True does not work with precision 16 (mixed_float16): '
          "Keras' LossScaleOptimizer fails inside XLA. Set Pipeline.precision = 'bf16' "
          'or 32, or Agent.jit_compile = False.')
    self.obs_space = obs_space
    self.act_space = act_space
    self.step = step
    self.expl_noise = float(expl_noise)
    self.eval_noise = float(eval_noise)
    self.wm = gin.get_configurable(WorldModel)(obs_space, act_space)
    self.task_behavior = gin.get_configurable(ActorCritic)(act_space, step)
    if expl_behavior is None:
      expl_behavior = exploration.Greedy
    if not callable(expl_behavior):
      raise ConfigError(
          f'Agent.expl_behavior must be an exploration factory such as '
          f'@objectives.Plan2Explore (no parentheses), got {expl_behavior!r}.')
    behavior = expl_behavior(self.wm, act_space, step)
    if not isinstance(behavior, exploration.Behavior):
      raise ConfigError(
          f'Agent.expl_behavior built {behavior!r}, which is not an exploration '
          'behaviour; bind one of Greedy, Plan2Explore, RandomPolicy from the '
          '`objectives` registry, without parentheses.')
    behavior.bind(self.task_behavior)
    self.expl_behavior = behavior
    self.greedy = isinstance(behavior, exploration.Greedy)
    self.image_keys = [
        key for key, shape in self.wm.shapes.items() if len(shape) == 3]
    if compile:
      self._policy_fn = tf.function(self._policy, jit_compile=jit_compile)
      self._train_fn = tf.function(self._train, jit_compile=jit_compile)
    else:
      self._policy_fn = self._policy
      self._train_fn = self._train

  def initial_state(self, count):
    """The policy state for `count` environments: zero latent and zero action."""
    latent = self.wm.dynamics.initial(count)
    return latent, tf.zeros((count, action_size(self.act_space)), tf.float32)

  def policy(self, obs, state=None, mode='train'):
    """Actions for a batch of step dicts obs {key: [N, ...]}: ({'action': [N, A]}, state)."""
    if mode not in MODES:
      raise ValueError(f"Agent.policy: mode must be one of {MODES}, got '{mode}'.")
    obs = {
        key: tf.convert_to_tensor(value) for key, value in obs.items()
        if not key.startswith('log_')}
    if state is None:
      state = self.initial_state(int(obs['is_first'].shape[0]))
    return self._policy_fn(obs, state, mode)

  def _policy(self, obs, state, mode):
    latent, action = state
    data = self.wm.preprocess(obs)
    embed = self.wm.encoder(data)
    # obs_step zeroes the previous latent and action of rows that start an episode.
    latent, _ = self.wm.dynamics.obs_step(latent, action, embed, data['is_first'])
    feat = self.wm.dynamics.get_feat(latent)
    if mode == 'eval':
      action = self.task_behavior.actor(feat).mode()
      noise = self.eval_noise
    elif mode == 'explore':
      action = self.expl_behavior.actor(feat).sample()
      noise = self.expl_noise
    else:
      action = self.task_behavior.actor(feat).sample()
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
    """One world model, actor-critic and exploration update: (state, metrics)."""
    batch = {
        key: tf.convert_to_tensor(value) for key, value in batch.items()
        if not key.startswith('log_')}
    if state is None:
      # A zero state is what the RSSM starts from; passing it keeps one trace.
      state = self.wm.dynamics.initial(int(batch['is_first'].shape[0]))
    return self._train_fn(batch, state)

  def _train(self, batch, state):
    metrics = {}
    state, outputs, model_metrics = self.wm.train(batch, state)
    metrics.update(model_metrics)
    start = outputs['post']
    reward_fn = lambda traj: self.wm.heads['reward'](traj['feat']).mean()
    metrics.update(self.task_behavior.train(
        self.wm, start, batch['is_terminal'], reward_fn))
    if not self.greedy:
      data = self.wm.preprocess(batch)
      behavior_metrics = self.expl_behavior.train(start, outputs, data)
      metrics.update({f'expl_{key}': value for key, value in behavior_metrics.items()})
    return state, metrics

  def report(self, batch):
    """Open-loop predictions {'openl_<key>': [B', T, 3H, W, C]} for each image key."""
    return {f'openl_{key}': self.wm.video_pred(batch, key) for key in self.image_keys}


gin.register(Agent, module='dreamkit')
