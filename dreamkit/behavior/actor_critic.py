"""The actor-critic that learns behaviour from imagined trajectories."""

import gin
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from dreamkit import optim
from dreamkit import validate
from dreamkit.behavior import objectives as objectives_lib
from dreamkit.behavior.imagination import imagine
from dreamkit.behavior.returns import lambda_return, replay_return
from dreamkit.errors import ConfigError
from dreamkit.networks import heads as heads_lib
from dreamkit.spaces import action_size, check_action_space, is_discrete

# What the actor may be: 'auto' is 'onehot' for Discrete and 'trunc_normal' for Box.
ACTOR_DISTS = ('auto', 'onehot', 'trunc_normal', 'tanh_normal', 'normal')


class ActorCritic(keras.layers.Layer):
  """DreamerV2's actor-critic trained on imagined rollouts of the world model.

      ac = ActorCritic(act_space, step, actor=..., critic=..., objective=...)
      metrics = ac.train(world_model, start, is_terminal, reward_fn, replay)
      action = ac.actor(feat).sample()      # feat [N, F] -> action [N, A]

  `start` is the posterior {key: [B, T, ...]}, `is_terminal` its [B, T] flags and
  `reward_fn(traj) -> [H+1, N]` the reward of each imagined state (the agent passes the
  mean of the world model's reward head, Plan2Explore its intrinsic reward).
  `replay` ({'reward', 'is_terminal', 'is_first'}: [B, T], the environment's, or None)
  is what the replay critic loss learns from; the agent passes it for the task reward,
  Plan2Explore's intrinsic reward has none (its actor-critic has no replay loss).

  Args:
    act_space: gymnasium Discrete or Box(-1, 1) action space.
    step: int64 tf.Variable, the agent step, for the schedules.
    actor: head factory called as `actor((A,), dist=actor_dist)` (the defaults bind
      `@actor/heads.MLPHead`).
    critic: head factory called as `critic(())` (twice: critic and slow critic);
      it must give a distribution whose `mode()` is the value (e.g. dist 'mse'; the
      defaults bind `@critic/heads.MLPHead`).
    objective: factory from the `objectives` registry, called as
      `objective(act_space)` (the defaults bind `@objectives.Auto`).
    discount: gamma, for the first imagined step and when there is no discount head
      (pipelines bind the macro DISCOUNT, which the world model shares).
    actor_dist: the actor's distribution, passed to the actor factory as `dist`;
      'auto' is 'onehot' for Discrete and 'trunc_normal' for Box, as the reference.
    actor_ent: entropy bonus weight, a number or schedule string.
    discount_lambda: lambda of the lambda-returns.
    imag_horizon: imagined steps H (H + 1 states).
    slow_target: compute targets with a slowly updated copy of the critic.
    slow_target_update: copy into the slow critic every this many critic updates.
    slow_target_fraction: 1 copies; less moves the slow critic that fraction of the way.
    slow_baseline: the Reinforce baseline also uses the slow critic.
    reward_norm_momentum: momentum of the running reward magnitude (1.0 = off).
    reward_norm_scale: rewards are multiplied by this after normalising.
    reward_norm_eps: added to the magnitude before dividing.
    return_norm: divide the actor's targets and baselines (so the advantages, and
      the returns a Dynamics objective maximises) by max(return_norm_limit, hi - lo),
      where lo and hi are running averages (decay `return_norm_decay`) of the
      `return_norm_low` and `return_norm_high` percentiles of the lambda-returns:
      DreamerV3's return normalisation. The entropy bonus then weighs the same
      against the advantages whatever the size of the task's returns. Off (False)
      in the reference.
    replay_critic: weight of a second critic loss on the replayed posterior states,
      whose targets are lambda-returns of the environment's rewards and terminations
      bootstrapped with the imagined returns (DreamerV3's replay value loss; see
      returns.replay_return). It grounds the values in the episodes' real endings,
      which imagination alone misses when the discount head does. 0 (the reference)
      is off; DreamerV3 uses 0.3.
    actor_lr, critic_lr, eps, clip, wd: the two optimizers (dreamkit.optim.Optimizer).
  """

  def __init__(
      self, act_space, step, actor, critic, objective, discount, actor_dist='auto',
      actor_ent=2e-3, discount_lambda=0.95, imag_horizon=15, slow_target=True,
      slow_target_update=100, slow_target_fraction=1.0, slow_baseline=True, reward_norm_momentum=1.0,
      reward_norm_scale=1.0, reward_norm_eps=1e-8, return_norm=False,
      return_norm_decay=0.99, return_norm_low=5.0, return_norm_high=95.0,
      return_norm_limit=1.0, replay_critic=0.0, actor_lr=8e-5, critic_lr=2e-4, eps=1e-5, clip=100.0,
      wd=1e-6):
    super().__init__(name='actor_critic')
    args = validate.Arguments(self)
    check_action_space(act_space, 'ActorCritic: act_space')
    self.act_space = act_space
    self.discrete = is_discrete(act_space)
    self.step = step
    # Every value is checked before a head is built: a bad one costs nothing.
    actor_dist = args.one_of(actor_dist, 'actor_dist', ACTOR_DISTS, 'a distribution')
    if actor_dist == 'auto':
      actor_dist = 'onehot' if self.discrete else 'trunc_normal'
    if (actor_dist == 'onehot') != self.discrete:
      fits = "'onehot' (or 'auto')" if self.discrete else (
          "one of: auto, trunc_normal, tanh_normal, normal")
      raise ConfigError(
          f"{args.name('actor_dist')} must be {fits} for the action space "
          f'{act_space}, got {actor_dist!r}.')
    self.actor_dist = actor_dist
    self.actor_ent = args.schedule(actor_ent, 'actor_ent')
    self.discount = args.fraction(discount, 'discount')
    self.discount_lambda = args.fraction(discount_lambda, 'discount_lambda')
    self.imag_horizon = args.int_at_least(
        imag_horizon, 'imag_horizon', 2, 'of at least 2 (the actor learns from H - 1 states)')
    slow_target = args.boolean(slow_target, 'slow_target')
    self.slow_target_update = args.positive_int(slow_target_update, 'slow_target_update')
    self.slow_target_fraction = args.number(
        slow_target_fraction, 'slow_target_fraction', 0, 1, low_open=True)
    self.slow_baseline = args.boolean(slow_baseline, 'slow_baseline')
    reward_norm = (args.fraction(reward_norm_momentum, 'reward_norm_momentum'),
                   args.number(reward_norm_scale, 'reward_norm_scale'),
                   args.positive(reward_norm_eps, 'reward_norm_eps'))
    return_norm = args.boolean(return_norm, 'return_norm')
    return_norm_args = (
        args.number(return_norm_decay, 'return_norm_decay', 0, 1, high_open=True),
        args.number(return_norm_low, 'return_norm_low', 0, 100),
        args.number(return_norm_high, 'return_norm_high', 0, 100),
        args.positive(return_norm_limit, 'return_norm_limit'))
    if return_norm_args[1] >= return_norm_args[2]:
      raise ConfigError(
          f"{args.name('return_norm_low')} must be below "
          f"{args.name('return_norm_high')}, got {return_norm_args[1]} and "
          f'{return_norm_args[2]}: they are the percentiles whose distance scales '
          'the returns.')
    self.replay_critic = args.non_negative(replay_critic, 'replay_critic')
    actor_lr = args.positive(actor_lr, 'actor_lr')
    critic_lr = args.positive(critic_lr, 'critic_lr')
    eps = args.positive(eps, 'eps')
    clip = args.clip_norm(clip, 'clip')
    wd = args.weight_decay(wd, 'wd')

    build_head = heads_lib.registry.build
    self.actor = build_head(
        actor, 'ActorCritic.actor', (action_size(act_space),), dist=actor_dist)
    self.critic = build_head(critic, 'ActorCritic.critic', ())
    self.slow_critic = build_head(critic, 'ActorCritic.critic', ()) if slow_target else None
    if self.slow_critic is not None:
      self.slow_critic.trainable = False  # Moved by copies, never by an optimizer.
    self.objective = objectives_lib.registry.build(
        objective, 'ActorCritic.objective', act_space)
    self.reward_norm = RewardNorm(*reward_norm)
    self.return_norm = ReturnNorm(*return_norm_args) if return_norm else None
    self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name='updates')
    self.actor_opt = optim.Optimizer('actor', actor_lr, eps, clip, wd)
    self.critic_opt = optim.Optimizer('critic', critic_lr, eps, clip, wd)

  def state(self):
    """The named variables a checkpoint holds (runner/checkpoint.py)."""
    state = {'actor': self.actor, 'critic': self.critic, 'updates': self.updates,
             'reward_norm': self.reward_norm, 'actor_optimizer': self.actor_opt,
             'critic_optimizer': self.critic_opt}
    if self.slow_critic is not None:
      state['slow_critic'] = self.slow_critic
    if self.return_norm is not None:
      state['return_norm'] = self.return_norm
    return state

  def create_variables(self, feat, optimizers=True):
    """Builds the actor, the critics and (with `optimizers`) their optimizers' slots
    from a feature batch `feat` [N, F], so a traced `train` creates no variable (a
    tf.function that does traces twice)."""
    for head in (self.actor, self.critic, self.slow_critic):
      if head is not None and not head.built:
        head(feat)
    if optimizers:
      self.actor_opt.build([self.actor])   # What `train` hands each optimizer.
      self.critic_opt.build([self.critic])

  @property
  def target_critic(self):
    """The critic whose values form the lambda-return targets."""
    return self.slow_critic if self.slow_critic is not None else self.critic

  def train(self, world_model, start, is_terminal, reward_fn, replay=None):
    """One actor and one critic update on trajectories imagined from `start`."""
    metrics = {}
    with tf.GradientTape() as actor_tape:
      traj = imagine(
          world_model, self.actor, start, is_terminal, self.imag_horizon, self.discount)
      # As the reference, the slow critic moves before this update's targets, so the
      # very first targets already come from a copy of the critic.
      self.update_slow_target(traj['feat'].shape)
      reward = tf.cast(reward_fn(traj), tf.float32)
      traj['reward'], reward_metrics = self.reward_norm(reward)
      target, value, target_metrics = self.target(traj)
      actor_loss, actor_metrics = self.actor_loss(traj, target, value)
    with tf.GradientTape() as critic_tape:
      critic_loss, critic_metrics = self.critic_loss(traj, target)
      if self.replay_critic and replay is not None:
        replay_loss, replay_metrics = self.replay_critic_loss(
            traj['feat'][0], target[0], replay)
        critic_loss += self.replay_critic * replay_loss
        critic_metrics.update(replay_metrics)
    metrics.update(self.actor_opt(actor_tape, actor_loss, [self.actor]))
    metrics.update(self.critic_opt(critic_tape, critic_loss, [self.critic]))
    metrics.update({f'reward_{k}': v for k, v in reward_metrics.items()})
    metrics.update(target_metrics)
    metrics.update(actor_metrics)
    metrics.update(critic_metrics)
    return metrics

  def target(self, traj):
    """(lambda-returns [H, N], the target critic's values [H+1, N], metrics).

    The returns come from the target critic, bootstrapped at the last state.
    """
    reward = traj['reward']
    disc = tf.cast(traj['discount'], tf.float32)
    value = tf.cast(self.target_critic(traj['feat']).mode(), tf.float32)
    target = lambda_return(
        reward[:-1], value[:-1], disc[:-1], bootstrap=value[-1],
        lambda_=self.discount_lambda, axis=0)
    metrics = {
        'critic_slow': tf.reduce_mean(value),
        'critic_target': tf.reduce_mean(target)}
    return target, value, metrics

  def actor_loss(self, traj, target, target_value):
    """The objective's loss over the first H - 1 states (see objectives.Objective).

    `target_value` [H+1, N] are the target critic's values from `target`: the
    baseline when the baseline critic is the target critic.
    """
    policy = self.actor(tf.stop_gradient(traj['feat'][:-2]))
    baseline_critic = self.target_critic if self.slow_baseline else self.critic
    if baseline_critic is self.target_critic:
      baseline = target_value[:-2]
    else:
      baseline = tf.cast(baseline_critic(traj['feat'][:-2]).mode(), tf.float32)
    ent_scale = self.actor_ent(self.step)
    norm_metrics = {}
    if self.return_norm is not None:
      scale, norm_metrics = self.return_norm(target)
      target, baseline = target / scale, baseline / scale
    loss, metrics = self.objective(policy, traj, target, baseline, ent_scale, self.step)
    metrics.update(norm_metrics)
    return loss, metrics

  def critic_loss(self, traj, target):
    # States:     [s0]  [s1]  [s2]   s3
    # Rewards:    [r0]  [r1]  [r2]   r3
    # Values:     [v0]  [v1]  [v2]   v3
    # Weights:    [ 1]  [w1]  [w2]   w3
    # Targets:    [R0]  [R1]  [R2]
    # Loss:        l0    l1    l2
    # The last state has no target of its own: it only bootstraps R_{H-1}.
    dist = self.critic(tf.stop_gradient(traj['feat'][:-1]))
    target = tf.stop_gradient(target)
    weight = tf.stop_gradient(traj['weight'][:-1])
    loss = -tf.reduce_mean(dist.log_prob(target) * weight)
    return loss, {'critic': tf.reduce_mean(tf.cast(dist.mode(), tf.float32))}

  def replay_critic_loss(self, feat, boot, replay):
    """The critic's loss on the replayed states (see `replay_critic`).

    `feat` [B*T, F] are the posterior features the trajectories start from, `boot`
    [B*T] the imagined returns from them and `replay` the batch's {'reward',
    'is_terminal', 'is_first'} [B, T].
    """
    shape = list(replay['is_first'].shape)
    reward = self.reward_norm.apply(tf.cast(replay['reward'], tf.float32))
    target, weight = replay_return(
        reward, replay['is_terminal'], replay['is_first'],
        tf.reshape(tf.stop_gradient(boot), shape), self.discount,
        self.discount_lambda)
    dist = self.critic(tf.stop_gradient(tf.reshape(feat, shape + [-1])))
    loss = -tf.reduce_mean(dist.log_prob(tf.stop_gradient(target)) * weight)
    return loss, {'critic_replay_loss': loss,
                  'critic_replay_target': tf.reduce_mean(target),
                  'critic_replay': tf.reduce_mean(tf.cast(dist.mode(), tf.float32))}

  def update_slow_target(self, feat_shape):
    """Every `slow_target_update` updates, move the slow critic to the critic.

    Counts one update per call. `feat_shape` [..., F] builds both critics if this is
    the first call, so the copy at update 0 has variables to copy.
    """
    if self.slow_critic is None:
      return
    for critic in (self.critic, self.slow_critic):
      if not critic.built:
        critic.build(feat_shape)
    source = self.critic.variables
    dest = self.slow_critic.variables
    if len(source) != len(dest) or any(
        s.shape != d.shape for s, d in zip(source, dest)):
      raise ValueError(
          'ActorCritic: the critic and the slow critic hold different variables; the '
          'critic factory must build the same network on each call.')
    # Update 0 copies whatever the fraction, so targets never come from random weights.
    mix = tf.where(
        self.updates == 0, tf.constant(1.0), tf.constant(self.slow_target_fraction))

    def move():
      for s, d in zip(source, dest):
        d.assign(tf.cast(mix, d.dtype) * s + (1 - tf.cast(mix, d.dtype)) * d)
      return tf.constant(True)

    tf.cond(self.updates % self.slow_target_update == 0, move,
            lambda: tf.constant(False))
    self.updates.assign_add(1)


class RewardNorm(tf.Module):
  """Divides rewards by a running mean of their magnitude (momentum 1.0: off).

      normed, metrics = norm(reward)      # [H+1, N] -> [H+1, N]
  """

  def __init__(self, momentum=1.0, scale=1.0, eps=1e-8):
    super().__init__(name='reward_norm')
    self.momentum = float(momentum)
    self.scale = float(scale)
    self.eps = float(eps)
    self.mag = tf.Variable(1.0, dtype=tf.float32, trainable=False, name='mag')

  def state(self):
    return {'mag': self.mag}

  def apply(self, reward):
    """`reward` normalised by the current magnitude, which it leaves unchanged."""
    return reward / (self.mag + self.eps) * self.scale

  def __call__(self, reward):
    if self.momentum < 1.0:
      mag = tf.reduce_mean(tf.abs(reward))
      self.mag.assign(self.momentum * self.mag + (1 - self.momentum) * mag)
    normed = self.apply(reward)
    metrics = {
        'mean': tf.reduce_mean(reward), 'std': tf.math.reduce_std(reward),
        'normed_mean': tf.reduce_mean(normed), 'normed_std': tf.math.reduce_std(normed)}
    return normed, metrics


class ReturnNorm(tf.Module):
  """The scale that return normalisation divides the actor's returns by.

      scale, metrics = norm(target)       # target [H, N] lambda-returns -> scalar

  Each call moves running averages of the returns' `low` and `high` percentiles
  towards this batch's (decay `decay`, from 0) and returns max(limit, hi - lo): returns
  spread over less than `limit` are left as they are, so small noisy returns are not
  blown up.
  """

  def __init__(self, decay=0.99, low=5.0, high=95.0, limit=1.0):
    super().__init__(name='return_norm')
    self.decay = float(decay)
    self.percentiles = [float(low), float(high)]
    self.limit = float(limit)
    self.range = tf.Variable(
        tf.zeros(2), dtype=tf.float32, trainable=False, name='range')

  def state(self):
    return {'range': self.range}

  def __call__(self, target):
    quantiles = tfp.stats.percentile(
        tf.stop_gradient(tf.cast(target, tf.float32)), self.percentiles,
        interpolation='linear')
    self.range.assign(self.decay * self.range + (1 - self.decay) * quantiles)
    scale = tf.maximum(self.limit, self.range[1] - self.range[0])
    return scale, {'actor_return_low': self.range[0],
                   'actor_return_high': self.range[1], 'actor_return_scale': scale}


gin.register(ActorCritic, module='dreamkit')
