"""Imagined trajectories: the world model's prior rolled forward under the actor."""

import tensorflow as tf


# One imagined trajectory of horizon H = 3 per start state (N = B * T of them):
#
#   action:     0      a_1     a_2     a_3        a_{t+1} ~ pi(. | sg(feat_t))
#                    ^  |    ^  |    ^  |
#                   /   v   /   v   /   v
#   state:     s_0 ---> s_1 ---> s_2 ---> s_3     s_0 = sg(posterior), s_{t+1} = img_step(s_t, a_{t+1})
#   discount:  d_0      d_1      d_2      d_3     d_0 = gamma * (1 - is_terminal) of the replayed
#                                                 state; d_t = discount head (or gamma) for t >= 1
#   weight:    1        d_0   d_0 d_1  d_0 d_1 d_2   w_t = prod_{k<t} d_k: whether s_t is reached
#
# Each list has H + 1 entries; `action[t]` is the action that *led to* s_t, as in the
# replay data, so `action[0]` is zeros. d_t says whether the episode goes on after
# s_t, so it weighs the *next* state: the weights are the discounts shifted by one.
def imagine(world_model, policy, start, is_terminal, horizon, discount, sample=True):
  """Roll the prior `horizon` steps from every posterior state of a batch.

  Args:
    world_model: a WorldModel (uses `dynamics` and the optional 'discount' head).
    policy: callable feat [N, F] -> action distribution with batch shape [N].
    start: posterior state {key: [B, T, ...]}; gradients are stopped here.
    is_terminal: [B, T] bool, the replayed `is_terminal` of the start states, or None.
    horizon: number of imagined steps H.
    discount: gamma, used for the first step and when there is no discount head.
    sample: draw the actions and the latents (training); False takes their modes
      (a deterministic rollout).

  Returns:
    {state keys: [H+1, N, ...], 'feat': [H+1, N, F], 'action': [H+1, N, A],
     'discount': [H+1, N], 'weight': [H+1, N]} with N = B * T; `weight` has its
    gradient stopped, everything else carries the gradient of the dynamics and of the
    sampled actions (what the `Dynamics` objective backpropagates through).
  """
  dynamics = world_model.dynamics
  state = {
      key: tf.stop_gradient(tf.reshape(value, [-1] + list(value.shape[2:])))
      for key, value in start.items()}
  states = [state]
  feats = [dynamics.get_feat(state)]
  actions = []
  for _ in range(horizon):
    # The actor does not steer the representation it reads.
    dist = policy(tf.stop_gradient(feats[-1]))
    action = dist.sample() if sample else dist.mode()
    state = dynamics.img_step(state, action, sample=sample)
    states.append(state)
    feats.append(dynamics.get_feat(state))
    actions.append(action)
  actions.insert(0, tf.zeros_like(actions[0]))
  traj = {key: tf.stack([s[key] for s in states], 0) for key in states[0]}
  traj['feat'] = tf.stack(feats, 0)
  traj['action'] = tf.stack(actions, 0)

  steps = tf.shape(traj['feat'])[:2]
  if 'discount' in world_model.heads:
    disc = tf.cast(world_model.heads['discount'](traj['feat']).mean(), tf.float32)
  else:
    disc = discount * tf.ones(steps, tf.float32)
  if is_terminal is not None:
    # The replay knows whether the start state was terminal; the head only guesses.
    first = discount * (1.0 - tf.cast(tf.reshape(is_terminal, [-1]), tf.float32))
    disc = tf.concat([first[None], disc[1:]], 0)
  traj['discount'] = disc
  traj['weight'] = tf.stop_gradient(
      tf.math.cumprod(tf.concat([tf.ones_like(disc[:1]), disc[:-1]], 0), 0))
  return traj
