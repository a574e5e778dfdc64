"""Actor objectives and the `objectives` registry.

An objective turns an imagined trajectory and its lambda-returns into the actor loss.
Bound as a factory that the actor-critic calls with its action space:

    ActorCritic.objective = @objectives.Auto       # the defaults: the reference's 'auto'
    ActorCritic.objective = @objectives.Both
    objectives.Both.mix = 'linear(0.1,0,2.5e6)'

`Auto` is `Reinforce` for discrete and `Dynamics` for continuous action spaces, as the
reference's `actor_grad: auto`.
"""

import tensorflow as tf

from dreamkit import validate
from dreamkit.registry import Registry
from dreamkit.spaces import is_discrete


class Objective:
  """The actor's learning signal from one imagined trajectory.

      loss, metrics = objective(policy, traj, target, baseline, ent_scale, step)

  Time runs along axis 0; N = B * T imagined trajectories of H + 1 states.

  Args:
    policy: the actor's distribution at sg(traj['feat'][:-2]), batch shape [H-1, N].
    traj: {'feat': [H+1, N, F], 'action': [H+1, N, A], 'weight': [H+1, N], ...}
      where action[t] is the action that led to state t (action[0] is zeros).
    target: [H, N] lambda-returns R_0 .. R_{H-1} (from the target critic).
    baseline: [H-1, N] values v(s_0) .. v(s_{H-2}) from the baseline critic.
    ent_scale: float32 scalar weight of the entropy bonus.
    step: the training step (int64 variable), for scheduled mixes.

  Returns:
    loss: float32 scalar, -mean(weight_t * (objective_t + ent_scale * entropy_t)) over
      the first H-1 states.
    metrics: dict of float32 scalars.

  Subclasses implement `objective(policy, action, target, baseline, step)` that
  returns the per-step objective [H-1, N] (to be maximised) and a metrics dict.

  Args:
    act_space: the action space (gymnasium Discrete or Box), given by the owner.
  """

  required_methods = ('objective',)

  def __init__(self, act_space):
    self.act_space = act_space

  def objective(self, policy, action, target, baseline, step):
    """Per-step objective [H-1, N] for action[t] = traj['action'][t+1]."""
    raise NotImplementedError

  def __call__(self, policy, traj, target, baseline, ent_scale, step):
    # Actions:      0   [a1]  [a2]   a3        a_{t+1} is sampled at s_t and leads to
    #                  ^  |  ^  |  ^  |        s_{t+1}; its learning signal is R_{t+1}.
    #                 /   v /   v /   v
    # States:     [s0]->[s1]-> s2 -> s3        H = 3 imagined steps, H + 1 states.
    # Targets:     R0   [R1]  [R2]             H lambda-returns (R_H would need v_{H+1}).
    # Baselines:  [v0]  [v1]   v2    v3
    # Entropies:  [e0]  [e1]                   of the policy at s0 .. s_{H-2}.
    # Weights:    [ 1]  [w1]   w2    w3
    # Loss:        l0    l1
    # The last state only bootstraps the return and the action taken at s_{H-1} has no
    # target after it, so the actor sees H - 1 states.
    objective, metrics = self.objective(
        policy, traj['action'][1:-1], target[1:], baseline, step)
    entropy = policy.entropy()
    objective += ent_scale * entropy
    weight = tf.stop_gradient(traj['weight'][:-2])
    loss = -tf.reduce_mean(weight * objective)
    metrics['actor_ent'] = tf.reduce_mean(entropy)
    metrics['actor_ent_scale'] = ent_scale
    return loss, metrics


registry = Registry('objectives', Objective)


@registry.register
class Reinforce(Objective):
  """Score-function gradient: log pi(a_t|s_t) * sg(R_{t+1} - v_slow(s_t))."""

  def objective(self, policy, action, target, baseline, step):
    advantage = tf.stop_gradient(target - baseline)
    # The sampled action is a constant: a straight-through one-hot sample would
    # otherwise carry a second, biased gradient path into the actor.
    log_prob = policy.log_prob(tf.stop_gradient(action))
    return log_prob * advantage, {
        'actor_advantage': tf.reduce_mean(advantage),
        'actor_advantage_std': tf.math.reduce_std(advantage)}


@registry.register
class Dynamics(Objective):
  """Backpropagate the lambda-return through the learned dynamics into the actor."""

  def objective(self, policy, action, target, baseline, step):
    return target, {}


@registry.register
class Both(Objective):
  """mix * Dynamics + (1 - mix) * Reinforce.

  Args:
    act_space: the action space, given by the owner.
    mix: weight of the dynamics gradient, a number or a schedule string such as
      'linear(0.1,0,2.5e6)' (the reference's `actor_grad_mix` is 0.1).
  """

  def __init__(self, act_space, mix=0.1):
    super().__init__(act_space)
    self.mix = validate.Arguments(self).schedule(mix, 'mix')
    self._reinforce = Reinforce(act_space)
    self._dynamics = Dynamics(act_space)

  def objective(self, policy, action, target, baseline, step):
    mix = self.mix(step)
    dynamics, _ = self._dynamics.objective(policy, action, target, baseline, step)
    reinforce, metrics = self._reinforce.objective(policy, action, target, baseline, step)
    metrics['actor_grad_mix'] = mix
    return mix * dynamics + (1 - mix) * reinforce, metrics


@registry.register
class Auto(Objective):
  """The reference's `actor_grad: auto`: Reinforce for discrete actions, else Dynamics."""

  def __init__(self, act_space):
    super().__init__(act_space)
    self.chosen = Reinforce(act_space) if is_discrete(act_space) else Dynamics(act_space)

  def objective(self, policy, action, target, baseline, step):
    return self.chosen.objective(policy, action, target, baseline, step)

