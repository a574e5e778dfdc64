"""Diagnostics on real episodes: the real returns they compare against, the pooling
of summaries, and the terminal-step beliefs."""

import warnings

import gymnasium
import numpy as np
import pytest

from dreamkit import diagnostics
from test_agent import make_agent, obs_space, random_steps

LENGTH = 9
GAMMA = 0.99  # WorldModel.discount of the tiny agent (the defaults' DISCOUNT macro)


@pytest.fixture(scope='module')
def agent():
  return make_agent(gymnasium.spaces.Discrete(3), image=False)


def episode(terminal, seed=0):
  """A real episode of LENGTH steps that ends in a termination or a time-limit cut."""
  steps = random_steps(obs_space(image=False), gymnasium.spaces.Discrete(3),
                       (LENGTH,), seed=seed)
  steps['is_first'][0] = True
  steps['is_last'][-1] = True
  steps['is_terminal'][-1] = terminal
  return steps


def discounted(rewards, discounts, last):
  """G_t = r_t + d_t G_{t+1}, written out, G_{T-1} = last."""
  returns = [last]
  for reward, discount in zip(rewards[-2::-1], discounts[-2::-1]):
    returns.append(reward + discount * returns[-1])
  return np.array(returns[::-1])


def test_real_return_of_a_terminated_episode_stops_at_the_terminal(agent):
  steps = episode(terminal=True)
  report = diagnostics.episode_report(agent.world_model, agent.actor_critic, steps)
  reward = np.tanh(steps['reward'])  # WorldModel.clip_rewards' default, 'tanh'
  expected = discounted(reward, np.full(LENGTH, GAMMA), last=reward[-1])
  np.testing.assert_allclose(report['return'], expected, rtol=1e-5, atol=1e-5)
  assert report['terminal'].tolist() == [0.0] * (LENGTH - 1) + [1.0]
  # The discount target is zero exactly at the terminal step, gamma elsewhere.
  np.testing.assert_allclose(report['discount'], GAMMA * (1 - report['terminal']))


def test_real_return_of_a_cut_episode_bootstraps_with_the_critic(agent):
  steps = episode(terminal=False, seed=1)
  report = diagnostics.episode_report(agent.world_model, agent.actor_critic, steps)
  reward = np.tanh(steps['reward'])
  last = reward[-1] + GAMMA * report['value'][-1]
  expected = discounted(reward, np.full(LENGTH, GAMMA), last=last)
  np.testing.assert_allclose(report['return'], expected, rtol=1e-5, atol=1e-5)
  # No terminal step: nothing to see ahead.
  assert np.isnan(report['term_prob_ahead']).all()


def test_report_shapes_and_terminal_view_ahead(agent):
  report = diagnostics.episode_report(
      agent.world_model, agent.actor_critic, episode(terminal=True), open_loop=4)
  for key in ('return', 'value', 'imag_return', 'reward_pred', 'discount_pred',
              'term_prob'):
    assert report[key].shape == (LENGTH,), key
  for key in ('openl_reward_error', 'openl_discount_error', 'openl_vector_error',
              'term_prob_ahead'):
    assert report[key].shape == (4,), key
  # Every k <= 4 has a start k steps before the terminal step: all defined, and
  # they are termination probabilities.
  assert np.isfinite(report['term_prob_ahead']).all()
  assert ((report['term_prob_ahead'] > -1e-3) & (report['term_prob_ahead'] < 1 + 1e-3)).all()
  np.testing.assert_allclose(report['term_prob'], 1 - report['discount_pred'] / GAMMA,
                             rtol=1e-5, atol=1e-6)


def test_open_loop_errors_past_the_episode_end_are_nan_not_zero(agent):
  report = diagnostics.episode_report(
      agent.world_model, agent.actor_critic, episode(terminal=True), open_loop=15)
  # k < LENGTH has a start k steps before the end; k >= LENGTH has none.
  for key in ('openl_reward_error', 'openl_discount_error', 'openl_vector_error'):
    assert np.isfinite(report[key][:LENGTH - 1]).all(), key
    assert np.isnan(report[key][LENGTH - 1:]).all(), key
  summary = diagnostics.summarize([report])
  assert np.isnan(summary['openl_reward_error_k15'])
  assert np.isfinite(summary['openl_reward_error_k5'])


@pytest.mark.parametrize('chunk', [1, 2, 4])
def test_a_chunked_report_equals_the_whole_episode_at_once(agent, chunk):
  # The episode goes through in chunks to bound the memory: the posterior's state must
  # carry over, and the open loop from a chunk's last states must see the next chunk.
  # Modes instead of samples make the two comparable number for number.
  steps = episode(terminal=True, seed=2)
  whole = diagnostics.episode_report(agent.world_model, agent.actor_critic, steps,
                                     open_loop=4, chunk=LENGTH, sample=False)
  chunked = diagnostics.episode_report(agent.world_model, agent.actor_critic, steps,
                                       open_loop=4, chunk=chunk, sample=False)
  assert sorted(chunked) == sorted(whole)
  for key, value in whole.items():
    np.testing.assert_allclose(chunked[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
  # Sampled, the posterior differs from the modes: `sample` is not ignored.
  sampled = diagnostics.episode_report(agent.world_model, agent.actor_critic, steps,
                                       open_loop=4, chunk=chunk)
  assert not np.allclose(sampled['value'], whole['value'])


def fake_report(term_prob, terminal, ahead):
  n = len(term_prob)
  zeros = np.zeros(n, np.float32)
  return {
      'return': zeros + 1, 'value': zeros + 3, 'imag_return': zeros,
      'reward': zeros, 'reward_pred': zeros + 0.5, 'discount': zeros,
      'discount_pred': zeros, 'terminal': np.asarray(terminal, np.float32),
      'term_prob': np.asarray(term_prob, np.float32),
      'openl_reward_error': np.ones(15, np.float32),
      'term_prob_ahead': np.asarray(ahead, np.float32)}


def test_summarize_pools_terminal_and_other_steps_separately():
  nan = np.nan
  first = fake_report([0.1, 0.9], [0, 1], [0.8] + [nan] * 14)
  second = fake_report([0.3, 0.2, 0.5], [0, 0, 1], [0.4, 0.6] + [nan] * 13)
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # an all-NaN column must not warn
    summary = diagnostics.summarize([first, second])
  assert summary['term_prob_end'] == pytest.approx(0.7)       # (0.9 + 0.5) / 2
  assert summary['false_term'] == pytest.approx(0.2)          # (0.1 + 0.3 + 0.2) / 3
  assert summary['value_bias'] == pytest.approx(2.0)
  assert summary['reward_error'] == pytest.approx(0.5)
  # Per k, the mean over the episodes that define it; NaN where none does.
  assert summary['term_prob_ahead_k1'] == pytest.approx(0.6)  # (0.8 + 0.4) / 2
  assert np.isnan(summary['term_prob_ahead_k5'])
  assert summary['openl_reward_error_k15'] == pytest.approx(1.0)


def test_summarize_without_a_terminal_step_gives_nan_end():
  report = fake_report([0.1, 0.2], [0, 0], [np.nan] * 15)
  summary = diagnostics.summarize([report])
  assert np.isnan(summary['term_prob_end'])
  assert summary['false_term'] == pytest.approx(0.15)
