"""Exploration behaviours: the `explorers` registry.

An explorer is what the agent collects with in 'explore' mode. Bound as a factory
that the runner calls with `(world_model, actor_critic, step)`, the task
actor-critic included, so an explorer can act with it or beside it:

    Pipeline.explorer = @explorers.Plan2Explore
    explorers.Plan2Explore.disag_target = 'stoch'

`Greedy` (the reference's default) explores with the task actor, `Random` uniformly at
random, `Plan2Explore` with an actor trained on ensemble disagreement. `RandomPolicy`
is the NumPy policy that fills the replay before training.
"""


import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from dreamkit import optim
from dreamkit import registry as registry_lib
from dreamkit import validate
from dreamkit.behavior.actor_critic import ActorCritic, RewardNorm
from dreamkit.errors import ConfigError
from dreamkit.networks import distributions as dists
from dreamkit.networks import heads as heads_lib
from dreamkit.registry import Registry
from dreamkit.spaces import action_size, check_action_space, is_discrete

tfd = tfp.distributions


class Explorer:
  """An exploration behaviour: an actor to act with and its own training step.

      explorer = Plan2Explore(world_model, actor_critic, step)   # a factory in gin
      metrics = explorer.train(start, outputs, data)
      action = explorer.actor(feat).sample()                     # feat [N, F] -> [N, A]
      explorer.state()                                           # named variables

  `start` is the posterior {key: [B, T, ...]}, `outputs` the world model's train
  outputs ({'embed', 'feat', 'post', ...} with [B, T, ...]) and `data` the
  preprocessed batch [B, T, ...]. The world model and the task actor-critic belong to
  the agent, which saves them; `state()` holds only what the explorer adds.
  """

  required_methods = ('train', 'actor')
  trains = True  # False: `train` does nothing and the agent skips it.

  def train(self, start, outputs, data):
    raise NotImplementedError

  def actor(self, feat):
    raise NotImplementedError

  def state(self):
    return {}

  def create_variables(self, feat, optimizers=True):
    """Optional: build the variables `train` and `actor` use from a feature batch
    `feat` [N, F] (and, with `optimizers`, the optimizers' slots), so the agent's
    traced functions create none and trace once. Variables left to the first call
    work too, at the cost of a second trace."""


registry = Registry('explorers', Explorer)


def uniform(act_space, batch_shape):
  """Uniform actions: a one-hot over Discrete(n), uniform on [-1, 1]^d for a Box."""
  shape = tf.concat([batch_shape, [action_size(act_space)]], 0)
  if is_discrete(act_space):
    return dists.OneHotDist(logits=tf.zeros(shape, tf.float32))
  ones = tf.ones(shape, tf.float32)
  return tfd.Independent(tfd.Uniform(-ones, ones), 1)


@registry.register
class Greedy(Explorer):
  """Explore with the task actor (the reference's `expl_behavior: greedy`)."""

  trains = False

  def __init__(self, world_model, actor_critic, step):
    del world_model, step
    self._actor_critic = actor_critic

  def actor(self, feat):
    return self._actor_critic.actor(feat)

  def train(self, start, outputs, data):
    return {}  # The agent trains the task actor-critic already.


@registry.register
class Random(Explorer):
  """Explore uniformly at random (the reference's `expl_behavior: random`)."""

  trains = False

  def __init__(self, world_model, actor_critic, step):
    del world_model, step
    self.act_space = actor_critic.act_space

  def actor(self, feat):
    return uniform(self.act_space, tf.shape(feat)[:-1])

  def train(self, start, outputs, data):
    return {}


class RandomPolicy:
  """Uniform random actions in NumPy, no TF graph: what prefills the replay.

      policy = RandomPolicy(act_space, seed=0)
      outputs, state = policy(obs)          # obs: {key: [N, ...]}
      outputs['action']                     # [N, A] float32
  """

  def __init__(self, act_space, seed=None):
    check_action_space(act_space, 'RandomPolicy: act_space')
    self.discrete = is_discrete(act_space)
    self.size = action_size(act_space)
    self._rng = np.random.default_rng(seed)

  def sample(self, count):
    """[count, A] float32 random actions."""
    if self.discrete:
      return np.eye(self.size, dtype=np.float32)[self._rng.integers(0, self.size, count)]
    return self._rng.uniform(-1, 1, (count, self.size)).astype(np.float32)

  def __call__(self, obs, state=None):
    return {'action': self.sample(len(np.asarray(obs['is_first'])))}, state


@registry.register
class Plan2Explore(keras.layers.Layer, Explorer):
  """Plan2Explore: seek the states where an ensemble of one-step models disagrees.

  An ensemble of `disag_models` heads predicts `disag_target` at step t + offset from
  the feature (and the action stored) at step t of the replayed batch. In
  imagination, the intrinsic reward of a state is the ensemble's standard deviation
  averaged over the target's dimensions (as the reference computes it), and an
  actor-critic of its own maximises
  `expl_intr_scale * intrinsic + expl_extr_scale * extrinsic`.

  Args:
    world_model: the agent's WorldModel (dynamics, reward head).
    actor_critic: the agent's task ActorCritic (for the action space).
    step: int64 tf.Variable, the agent step.
    behavior: factory of the exploration actor-critic, called as
      `behavior(act_space, step)` (the defaults bind `@ActorCritic`, configured as
      the task's, as the reference).
    head: head factory for the ensemble members, called as `head((size,))` (the
      defaults bind `@expl_head/heads.MLPHead`: the reference's 4 x 400, dist mse).
    disag_models: ensemble size.
    disag_target: 'stoch', 'deter', 'feat' or 'embed'.
    disag_offset: how many steps ahead the ensemble predicts.
    disag_log: use log(disagreement) as the intrinsic reward.
    disag_action_cond: feed the action next to the feature.
    expl_intr_scale, expl_extr_scale: weights of the intrinsic / extrinsic rewards.
    expl_reward_norm_momentum: running normalisation of both rewards (1.0 = off).
    lr, eps, clip, wd: the ensemble's optimizer.
  """

  TARGETS = ('stoch', 'deter', 'feat', 'embed')

  def __init__(self, world_model, actor_critic, step, behavior, head, disag_models=10,
               disag_target='stoch', disag_offset=1, disag_log=False,
               disag_action_cond=True, expl_intr_scale=1.0, expl_extr_scale=0.0,
               expl_reward_norm_momentum=1.0, lr=3e-4, eps=1e-5, clip=100.0, wd=1e-6):
    super().__init__(name='plan2explore')
    args = validate.Arguments(self)
    self.disag_models = args.int_at_least(
        disag_models, 'disag_models', 2, 'of at least 2 (an ensemble disagrees)')
    self.disag_target = args.one_of(disag_target, 'disag_target', self.TARGETS, 'a target')
    self.disag_offset = args.non_negative_int(disag_offset, 'disag_offset')
    self.disag_log = args.boolean(disag_log, 'disag_log')
    self.disag_action_cond = args.boolean(disag_action_cond, 'disag_action_cond')
    self.intr_scale = args.number(expl_intr_scale, 'expl_intr_scale')
    self.extr_scale = args.number(expl_extr_scale, 'expl_extr_scale')
    momentum = args.fraction(expl_reward_norm_momentum, 'expl_reward_norm_momentum')
    lr = args.positive(lr, 'lr')
    eps = args.positive(eps, 'eps')
    clip = args.clip_norm(clip, 'clip')
    wd = args.weight_decay(wd, 'wd')
    act_space = actor_critic.act_space
    self._world_model = _Untracked(world_model)   # The agent owns and saves it.
    self.act_space = act_space
    self.step = step
    self.ac = registry_lib.build(behavior, 'Plan2Explore.behavior', ActorCritic, act_space, step)
    self.intr_norm = RewardNorm(momentum)
    self.extr_norm = RewardNorm(momentum)
    self.opt = optim.Optimizer('ensemble', lr, eps, clip, wd)
    # Built here so the head factory reads its gin bindings now, not in tf.function.
    size = _target_size(world_model, disag_target)
    self.ensemble = [heads_lib.registry.build(head, 'Plan2Explore.head', (size,))
                     for _ in range(self.disag_models)]

  def check_batch_length(self, length):
    """ConfigError unless training chunks of `length` steps leave the ensemble a
    target: it predicts `disag_offset` steps ahead within a chunk."""
    if self.disag_offset >= length:
      raise ConfigError(
          f'{validate.gin_name(type(self))}.disag_offset = {self.disag_offset} leaves '
          f'no target in chunks of Pipeline.batch_length = {length} steps; set '
          f'disag_offset below {length} (the reference uses 1) or a longer batch_length.')

  @property
  def world_model(self):
    return self._world_model.value

  def create_variables(self, feat, optimizers=True):
    """Builds the exploration actor-critic and the ensemble (and, with `optimizers`,
    their optimizers' slots) from a feature batch `feat` [N, F], so a traced `train`
    creates no variable."""
    self.ac.create_variables(feat, optimizers)
    action = tf.zeros((feat.shape[0], action_size(self.act_space)), feat.dtype)
    inputs = self._inputs(tf.cast(feat, tf.float32), action)
    for member in self.ensemble:
      if not member.built:
        member(inputs)
    if optimizers:
      self.opt.build(self.ensemble)

  def state(self):
    return {'ensemble': list(self.ensemble), 'optimizer': self.opt,
            'actor_critic': self.ac, 'intr_norm': self.intr_norm,
            'extr_norm': self.extr_norm}

  def actor(self, feat):
    return self.ac.actor(feat)

  def _inputs(self, feat, action):
    if self.disag_action_cond:
      return tf.concat([feat, tf.cast(action, feat.dtype)], -1)
    return feat

  def train(self, start, outputs, data):
    """Ensemble step on the batch, then an actor-critic step on the intrinsic reward."""
    stoch = start['stoch']
    stoch = tf.reshape(stoch, list(stoch.shape[:2]) + [-1])
    target = {
        'stoch': stoch, 'deter': start['deter'],
        'feat': outputs['feat'], 'embed': outputs['embed'],
    }[self.disag_target]
    target = tf.cast(target, tf.float32)
    inputs = self._inputs(tf.cast(outputs['feat'], tf.float32), data['action'])
    if self.disag_offset:
      target = target[:, self.disag_offset:]
      inputs = inputs[:, :-self.disag_offset]
    target = tf.stop_gradient(target)
    inputs = tf.stop_gradient(inputs)
    with tf.GradientTape() as tape:
      loss = -tf.add_n([
          tf.reduce_mean(member(inputs).log_prob(target)) for member in self.ensemble])
    metrics = self.opt(tape, loss, self.ensemble)
    metrics.update(self.ac.train(
        self.world_model, start, data['is_terminal'], self.reward))
    return metrics

  def disagreement(self, traj):
    """[H+1, N] ensemble std averaged over the target dimensions."""
    inputs = self._inputs(tf.cast(traj['feat'], tf.float32), traj['action'])
    preds = tf.stack(
        [tf.cast(member(inputs).mode(), tf.float32) for member in self.ensemble], 0)
    disag = tf.reduce_mean(tf.math.reduce_std(preds, 0), -1)
    if self.disag_log:
      disag = tf.math.log(disag)
    return disag

  def reward(self, traj):
    """The exploration reward of each imagined state, [H+1, N]."""
    reward = self.intr_scale * self.intr_norm(self.disagreement(traj))[0]
    if self.extr_scale:
      extrinsic = self.world_model.heads['reward'](traj['feat']).mean()
      reward += self.extr_scale * self.extr_norm(tf.cast(extrinsic, tf.float32))[0]
    return reward


class _Untracked:
  """Holds an object without Keras or checkpoint tracking (it has another owner)."""

  def __init__(self, value):
    self.value = value


def _target_size(world_model, target):
  """Flat size of the ensemble's prediction target, from a zero state or input."""
  dynamics = world_model.dynamics
  state = dynamics.initial(1)
  if target == 'stoch':
    return int(tf.size(state['stoch']))
  if target == 'deter':
    return int(state['deter'].shape[-1])
  if target == 'feat':
    return int(dynamics.get_feat(state).shape[-1])
  zeros = {key: tf.zeros((1,) + tuple(shape)) for key, shape in world_model.shapes.items()}
  return int(world_model.encoder(zeros).shape[-1])
