"""Lambda-returns against hand-computed values."""

import numpy as np
import pytest
import tensorflow as tf

from dreamkit.behavior.returns import lambda_return, replay_return


def reference(reward, value, pcont, bootstrap, lambda_):
  """Explicit backward loop over time (axis 0)."""
  horizon = len(reward)
  returns = np.zeros_like(reward)
  following = bootstrap
  for t in reversed(range(horizon)):
    next_value = value[t + 1] if t + 1 < horizon else bootstrap
    following = reward[t] + pcont[t] * ((1 - lambda_) * next_value + lambda_ * following)
    returns[t] = following
  return returns


def test_hand_computed_example():
  reward = [1.0, 2.0, 3.0]
  value = [9.0, 10.0, 20.0]   # v_0 is never used.
  pcont = [0.5, 0.5, 0.5]
  bootstrap = 40.0
  # R_2 = 3 + 0.5 * 40 = 23
  # R_1 = 2 + 0.5 * (0.5 * 20 + 0.5 * 23) = 2 + 0.5 * 21.5 = 12.75
  # R_0 = 1 + 0.5 * (0.5 * 10 + 0.5 * 12.75) = 1 + 0.5 * 11.375 = 6.6875
  returns = lambda_return(reward, value, pcont, bootstrap, 0.5)
  np.testing.assert_allclose(returns.numpy(), [6.6875, 12.75, 23.0])


def test_lambda_zero_is_one_step_td():
  reward = np.array([1.0, 2.0, 3.0], np.float32)
  value = np.array([100.0, 10.0, 20.0], np.float32)
  pcont = np.array([0.9, 0.9, 0.9], np.float32)
  returns = lambda_return(reward, value, pcont, 40.0, 0.0)
  expected = reward + pcont * np.array([10.0, 20.0, 40.0])
  np.testing.assert_allclose(returns.numpy(), expected, rtol=1e-6)


def test_lambda_one_is_discounted_monte_carlo():
  reward = np.array([1.0, 2.0, 3.0], np.float32)
  value = np.array([100.0, 10.0, 20.0], np.float32)   # ignored when lambda = 1
  gamma = 0.9
  returns = lambda_return(reward, value, gamma * np.ones(3, np.float32), 40.0, 1.0)
  expected = [1 + gamma * 2 + gamma ** 2 * 3 + gamma ** 3 * 40,
              2 + gamma * 3 + gamma ** 2 * 40,
              3 + gamma * 40]
  np.testing.assert_allclose(returns.numpy(), expected, rtol=1e-6)


def test_terminal_in_the_middle_cuts_the_future():
  reward = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
  value = np.array([5.0, 6.0, 7.0, 8.0], np.float32)
  pcont = np.array([0.9, 0.0, 0.9, 0.9], np.float32)
  returns = lambda_return(reward, value, pcont, 50.0, 0.95).numpy()
  # Nothing after the terminal state s_1 reaches R_1 or R_0.
  assert returns[1] == pytest.approx(2.0)
  assert returns[0] == pytest.approx(1.0 + 0.9 * (0.05 * 6.0 + 0.95 * 2.0))
  np.testing.assert_allclose(
      returns, reference(reward, value, pcont, 50.0, 0.95), rtol=1e-6)


def test_batched_time_axis_and_scalar_pcont():
  rng = np.random.default_rng(0)
  reward = rng.normal(size=(4, 5)).astype(np.float32)
  value = rng.normal(size=(4, 5)).astype(np.float32)
  bootstrap = rng.normal(size=(4,)).astype(np.float32)
  # Time on axis 1: [N, H].
  returns = lambda_return(reward, value, 0.9, bootstrap, 0.7, axis=1).numpy()
  for row in range(4):
    expected = reference(reward[row], value[row], 0.9 * np.ones(5), bootstrap[row], 0.7)
    np.testing.assert_allclose(returns[row], expected, rtol=1e-5, atol=1e-6)
  # Time on axis 0 gives the same numbers transposed.
  time_major = lambda_return(reward.T, value.T, 0.9, bootstrap, 0.7, axis=0).numpy()
  np.testing.assert_allclose(time_major.T, returns, rtol=1e-6)


def test_gradient_flows_to_rewards_and_values():
  reward = tf.Variable([1.0, 2.0])
  value = tf.Variable([0.0, 3.0])
  with tf.GradientTape() as tape:
    returns = lambda_return(reward, value, [0.5, 0.5], 4.0, 0.5)
    total = tf.reduce_sum(returns)
  grad_reward, grad_value = tape.gradient(total, [reward, value])
  # dR_0/dr_1 = 0.5 * 0.5; dR_1/dr_1 = 1.
  np.testing.assert_allclose(grad_reward.numpy(), [1.0, 1.25])
  # v_1 enters R_0 through (1 - lambda) * d_0 only; v_0 is unused.
  np.testing.assert_allclose(grad_value.numpy(), [0.0, 0.25])


def numpy_replay_return(reward, term, first, boot, gamma, lam):
  """The replay returns by the definition, one row and one step at a time."""
  rows, steps = reward.shape
  ret = np.zeros_like(reward)
  weight = np.ones_like(reward)
  for b in range(rows):
    for t in reversed(range(steps)):
      ends = t == steps - 1 or first[b, t + 1]
      if term[b, t]:
        ret[b, t] = reward[b, t]
      elif ends:
        ret[b, t] = boot[b, t]
        weight[b, t] = 0.0
      else:
        ret[b, t] = reward[b, t] + gamma * (
            (1 - lam) * boot[b, t + 1] + lam * ret[b, t + 1])
  return ret, weight


def test_replay_return_restarts_at_each_sequence_and_stops_at_terminations():
  rng = np.random.default_rng(0)
  reward = rng.normal(size=(3, 7)).astype(np.float32)
  boot = rng.normal(size=(3, 7)).astype(np.float32) * 10
  first = np.zeros((3, 7), bool)
  first[:, 0] = True
  first[0, 3] = True        # a second sequence starts mid-row
  first[2, 6] = True        # a one-step sequence at the row's end
  term = np.zeros((3, 7), bool)
  term[0, 2] = True         # an episode ends just before the next sequence
  term[1, 4] = True         # a termination mid-sequence (what follows is cut)
  term[2, 6] = True
  ret, weight = replay_return(reward, term, first, boot, 0.9, 0.8)
  want_ret, want_weight = numpy_replay_return(reward, term, first, boot, 0.9, 0.8)
  np.testing.assert_allclose(ret.numpy(), want_ret, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(weight.numpy(), want_weight)
  # Spot checks of the definition, by hand.
  assert ret.numpy()[0, 2] == pytest.approx(reward[0, 2])
  assert ret.numpy()[0, 6] == pytest.approx(boot[0, 6]) and weight.numpy()[0, 6] == 0
  assert ret.numpy()[1, 3] == pytest.approx(
      reward[1, 3] + 0.9 * (0.2 * boot[1, 4] + 0.8 * reward[1, 4]))
  assert weight.numpy()[2, 6] == 1.0
