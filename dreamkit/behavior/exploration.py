"""Exploration behaviours, registered in the `objectives` registry.

Bound as factories and called by the agent with `(world_model, act_space, step)`:

    Agent.expl_behavior = @objectives.Plan2Explore
    objectives.Plan2Explore.disag_target = 'stoch'

`Greedy` (the default) explores with the task actor, `Plan2Explore` with an actor
trained on ensemble disagreement, `RandomPolicy` uniformly at random (it also fills
the replay before training: `RandomPolicy(act_space=space)(obs)` runs in NumPy).
"""


import gin
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from dreamkit import optim
from dreamkit.behavior.actor_critic import (
    ActorCritic, RewardNorm, check_space, is_discrete, scoped_head)
from dreamkit.behavior.objectives import Behavior, registry
from dreamkit.errors import ConfigError
from dreamkit.networks import distributions as dists

tfd = tfp.distributions


@registry.register
class Greedy(Behavior):
  """Explore with the task actor (the reference's `expl_behavior: greedy`)."""

  def __init__(self, world_model=None, act_space=None, step=None):
    del world_model, act_space, step
    # A plain reference: the agent owns (and checkpoints) the task behaviour.
    self._task = None

  def bind(self, task_behavior):
    self._task = task_behavior

  def actor(self, feat):
    if self._task is None:
      raise ValueError('Greedy.actor: call bind(task_behavior) first.')
    return self._task.actor(feat)

  def train(self, start, outputs, data):
    # The task behaviour is trained by the agent already.
    return {}


@registry.register
class RandomPolicy(Behavior):
  """Uniform actions: one-hot for Discrete, uniform in [-1, 1] for Box.

      policy = RandomPolicy(act_space=space)
      outputs, state = policy(obs)          # obs: {key: [N, ...]}; NumPy, no TF graph
      outputs['action']                     # [N, A] float32
  """

  def __init__(self, world_model=None, act_space=None, step=None, seed=None):
    del world_model, step
    if act_space is None:
      raise ConfigError('RandomPolicy needs the action space: RandomPolicy(act_space=...).')
    check_space(act_space, 'RandomPolicy')
    self.act_space = act_space
    self.discrete = is_discrete(act_space)
    self.size = int(act_space.n) if self.discrete else int(act_space.shape[0])
    self._rng = np.random.default_rng(seed)

  def sample(self, count):
    """[count, A] float32 random actions (NumPy)."""
    if self.discrete:
      return np.eye(self.size, dtype=np.float32)[self._rng.integers(0, self.size, count)]
    return self._rng.uniform(-1, 1, (count, self.size)).astype(np.float32)

  def __call__(self, obs, state=None, mode='train'):
    del mode
    count = len(np.asarray(obs['is_first']))
    return {'action': self.sample(count)}, state

  def actor(self, feat):
    batch = tf.shape(feat)[:-1]
    if self.discrete:
      return dists.OneHotDist(
          logits=tf.zeros(tf.concat([batch, [self.size]], 0), tf.float32))
    ones = tf.ones(tf.concat([batch, [self.size]], 0), tf.float32)
    return tfd.Independent(tfd.Uniform(-ones, ones), 1)

  def train(self, start, outputs, data):
    return {}


@registry.register
class Plan2Explore(keras.layers.Layer, Behavior):
  """Plan2Explore: seek the states where an ensemble of one-step models disagrees.

  An ensemble of `disag_models` heads predicts `disag_target` at step t + offset from
  the feature (and the action stored) at step t of the replayed batch. In
  imagination, the intrinsic reward of a state is the ensemble's standard deviation
  averaged over the target's dimensions (as the reference computes it), and a separate
  ActorCritic (gin-configured like the task one) maximises
  `expl_intr_scale * intrinsic + expl_extr_scale * extrinsic`.

  Args:
    world_model: the agent's WorldModel (dynamics, reward head).
    act_space: the action space.
    step: int64 tf.Variable, the agent step.
    head: head factory for the ensemble members, called as `head((size,))`; default:
      the gin-configured `heads.MLPHead` in scope `expl_head` (the reference: 4 x 400,
      dist mse).
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

  def __init__(self, world_model, act_space, step, head=None, disag_models=10,
               disag_target='stoch', disag_offset=1, disag_log=False,
               disag_action_cond=True, expl_intr_scale=1.0, expl_extr_scale=0.0,
               expl_reward_norm_momentum=1.0, lr=3e-4, eps=1e-5, clip=100.0, wd=1e-6):
    super().__init__(name='plan2explore')
    if disag_target not in self.TARGETS:
      raise ConfigError(
          f"Plan2Explore.disag_target must be one of {', '.join(self.TARGETS)}, got "
          f'{disag_target!r}.')
    if int(disag_models) < 2:
      raise ConfigError(
          f'Plan2Explore.disag_models must be at least 2, got {disag_models}.')
    head = head or scoped_head('expl_head')
    self._world_model = _Untracked(world_model)   # The agent owns and saves it.
    self.act_space = act_space
    self.step = step
    self.disag_models = int(disag_models)
    self.disag_target = disag_target
    self.disag_offset = int(disag_offset)
    self.disag_log = bool(disag_log)
    self.disag_action_cond = bool(disag_action_cond)
    self.intr_scale = float(expl_intr_scale)
    self.extr_scale = float(expl_extr_scale)
    self.ac = gin.get_configurable(ActorCritic)(act_space, step)
    self.intr_norm = RewardNorm(expl_reward_norm_momentum)
    self.extr_norm = RewardNorm(expl_reward_norm_momentum)
    self.opt = optim.Optimizer('ensemble', lr, eps, clip, wd)
    # Built here so the head factory reads its gin bindings now, not in tf.function.
    size = _target_size(world_model, disag_target)
    self.ensemble = [head((size,)) for _ in range(self.disag_models)]

  @property
  def world_model(self):
    return self._world_model.value

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
