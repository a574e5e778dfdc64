"""Lambda-returns: the critic's regression target and the actor's objective."""

import tensorflow as tf


# The recursion runs backwards over an imagined trajectory of H + 1 states. Index t is
# the imagined state s_t; reward r_t and discount d_t are the heads' predictions at s_t.
#
#   states:     s_0     s_1     s_2    ...   s_{H-1}     s_H
#   reward:     r_0     r_1     r_2          r_{H-1}    (unused)
#   pcont:      d_0     d_1     d_2          d_{H-1}    (unused)
#   value:              v_1     v_2          v_{H-1}     v_H = bootstrap
#   returns:    R_0  <- R_1  <- R_2  <- ... <- R_{H-1} <- (R_H := v_H)
#
#   R_t = r_t + d_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1})
#
# `reward`, `value`, `pcont` hold the first H entries (t = 0 .. H-1); `bootstrap` is
# v_H, the value at the last state. v_0 is never read: it is only passed so that all
# three inputs share one shape. lambda = 0 gives one-step TD targets
# r_t + d_t v_{t+1}; lambda = 1 gives the discounted Monte Carlo return bootstrapped
# with v_H. A zero discount d_t cuts everything after s_t from R_t.
def lambda_return(reward, value, pcont, bootstrap, lambda_, axis=0):
  """TD(lambda) returns, computed backwards along `axis`.

  Args:
    reward: [..., H, ...] float rewards r_t for t = 0 .. H-1 (time on `axis`).
    value: same shape: critic values v_t (v_0 is unused, see the diagram).
    pcont: same shape, or a scalar: discounts d_t (already including gamma).
    bootstrap: `reward` without `axis`: the value v_H of the last state.
    lambda_: float in [0, 1].
    axis: the time axis.

  Returns:
    [..., H, ...] lambda-returns R_t, same shape as `reward`.
  """
  reward = tf.convert_to_tensor(reward)
  value = tf.convert_to_tensor(value, reward.dtype)
  pcont = tf.convert_to_tensor(pcont, reward.dtype)
  bootstrap = tf.convert_to_tensor(bootstrap, reward.dtype)
  if pcont.shape.rank == 0:
    pcont = pcont * tf.ones_like(reward)
  rank = reward.shape.rank
  if axis < 0:
    axis += rank
  if axis != 0:
    # Move time to the front so tf.scan walks over it.
    perm = [axis] + [i for i in range(rank) if i != axis]
    reward, value, pcont = (tf.transpose(x, perm) for x in (reward, value, pcont))
  next_value = tf.concat([value[1:], bootstrap[None]], 0)
  # The part of each return that does not depend on the later return.
  inputs = reward + pcont * next_value * (1 - lambda_)
  returns = tf.scan(
      lambda agg, cur: cur[0] + cur[1] * lambda_ * agg,
      (inputs, pcont), bootstrap, reverse=True)
  if axis != 0:
    inverse = [0] * rank
    for i, p in enumerate(perm):
      inverse[p] = i
    returns = tf.transpose(returns, inverse)
  return returns
