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


# The same recursion over a replayed batch row of T steps, where rewards and
# terminations are the environment's and `boot` stands in for the values: boot_t is
# the imagined lambda-return from the posterior state s_t (R_0 of the trajectory
# imagined from it). A row joins several replayed sequences (`is_first` marks where
# each starts), so the recursion restarts at each of them:
#
#   step:        0      1      2      3      4      5
#   is_first:    1      0      0      1      0      0
#   is_terminal: 0      0      1      0      0      0
#   return:     R_0 <- R_1 <- R_2    R_3 <- R_4 <- R_5
#   R_2 = r_2                   (the episode ended: nothing after it)
#   R_5 = boot_5                (the row ends: the imagined return is all we know)
#   R_t = r_t + gamma (1 - term_t) ((1 - lambda) boot_{t+1} + lambda R_{t+1}) elsewhere
#
# A sequence that ends without a termination (the row's end, or the next sequence
# starts) gives its last step the imagined return itself: that step has weight 0, as
# it holds nothing real to learn from.
def replay_return(reward, is_terminal, is_first, boot, discount, lambda_):
  """Lambda-returns over replayed rows, bootstrapped with imagined returns.

  Args:
    reward: [B, T] float, the environment's (preprocessed) rewards r_t.
    is_terminal: [B, T] bool or 0/1, whether the episode ended at s_t.
    is_first: [B, T] bool or 0/1, whether a replayed sequence starts at s_t.
    boot: [B, T] float, the imagined return from each s_t.
    discount: gamma.
    lambda_: float in [0, 1].

  Returns:
    (returns [B, T], weight [B, T]): weight is 0 where the return is `boot` alone.
  """
  reward = tf.convert_to_tensor(reward, tf.float32)
  boot = tf.convert_to_tensor(boot, tf.float32)
  term = tf.cast(is_terminal, tf.float32)
  # Whether the next step belongs to another sequence (or the row ends here).
  ends = tf.concat(
      [tf.cast(is_first, tf.bool)[:, 1:], tf.ones_like(reward[:, :1], tf.bool)], 1)
  next_boot = tf.concat([boot[:, 1:], boot[:, -1:]], 1)
  pcont = discount * (1.0 - term)
  last = tf.where(term > 0, reward, boot)
  inputs = tf.where(ends, last, reward + pcont * (1 - lambda_) * next_boot)
  carry = tf.where(ends, tf.zeros_like(pcont), pcont * lambda_)
  returns = tf.scan(
      lambda agg, cur: cur[0] + cur[1] * agg,
      (tf.transpose(inputs), tf.transpose(carry)), tf.zeros_like(reward[:, 0]),
      reverse=True)
  weight = 1.0 - tf.cast(ends, tf.float32) * (1.0 - term)
  return tf.transpose(returns), weight
