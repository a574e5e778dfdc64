"""What the agent believes, against what happened: diagnostics on real episodes.

    report = diagnostics.episode_report(world_model, actor_critic, episode)
    summary = diagnostics.summarize([report, ...])   # {'value_bias': ..., ...}

An episode is a step dict of arrays [T, ...] as the replay stores it (the driver's
`on_episode` gives the same). The world model filters it with its posterior; at
every real state s_t the report holds, as [T] arrays:

- `return`: the real discounted return from s_t, G_t = r_t + d_t G_{t+1}, with
  d_t = discount * (1 - is_terminal_t) and the training reward (after clip_rewards);
  the same quantity the critic learns (its value includes the reward at s_t). A
  time-limit cut (is_last without is_terminal) bootstraps with the critic's value
  there, so the last steps of a cut episode carry the critic's own guess.
- `value`: the critic's value v(s_t); `value - return` is its error.
- `imag_return`: the lambda-return the actor-critic imagines from s_t with its actor
  (the critic's training target R_0), against the real `return` of the same states.
- `reward`, `reward_pred`, `discount`, `discount_pred`: the heads at s_t.
- open loop: from s_t the prior is rolled k = 1..K steps under the real actions;
  `openl_reward_error[k-1]`, `openl_discount_error[k-1]` and `openl_<key>_error[k-1]`
  ([K] arrays) are mean absolute errors at s_{t+k}: how far ahead the model stays right.
  `term_prob_ahead[k-1]` is the termination probability the model gives the real
  terminal step when it last saw the episode k steps before it (NaN if none).

Everything runs on the CPU or GPU in one `tf.function` per call shape; nothing is
trained, nothing is written.
"""

import numpy as np
import tensorflow as tf

from dreamkit.behavior.imagination import imagine

OPEN_LOOP = 15  # the longest open-loop prediction checked, steps (the imagination horizon)


def episode_report(world_model, actor_critic, episode, open_loop=OPEN_LOOP):
  """Per-step beliefs against the real episode {key: [T, ...]}; see the module doc."""
  batch = {key: tf.convert_to_tensor(np.asarray(value)[None])
           for key, value in episode.items() if not key.startswith('log_')}
  report = _report_fn(world_model, actor_critic, batch, int(open_loop))
  return {key: value.numpy() for key, value in report.items()}


@tf.function(reduce_retracing=True, autograph=False)
def _report_fn(world_model, actor_critic, batch, open_loop):
  return _report(world_model, actor_critic, batch, open_loop)


def _report(world_model, actor_critic, batch, open_loop):
  wm = world_model
  data = wm.preprocess(batch)
  embed = wm.encoder(data)
  post, _ = wm.dynamics.observe(embed, data['action'], data['is_first'])
  post = {key: value[0] for key, value in post.items()}            # [T, ...]
  feat = tf.cast(wm.dynamics.get_feat(post), tf.float32)           # [T, F]
  length = tf.shape(feat)[0]
  gamma = wm.discount
  reward = data['reward'][0]
  terminal = tf.cast(data['is_terminal'][0], tf.float32)
  discount = gamma * (1.0 - terminal)
  value = tf.cast(actor_critic.critic(feat).mode(), tf.float32)
  reward_pred = tf.cast(wm.heads['reward'](feat).mean(), tf.float32)
  discount_pred = _discount(wm, feat, gamma)

  # Real returns, backwards; a cut episode bootstraps with the critic's last value.
  last = reward[-1] + (1.0 - terminal[-1]) * gamma * value[-1]
  real_return = tf.scan(
      lambda later, x: x[0] + x[1] * later,
      (reward[:-1], discount[:-1]), last, reverse=True)
  real_return = tf.concat([real_return, last[None]], 0)

  # The critic's target from every real state, imagined with the actor.
  start = {key: value[None] for key, value in post.items()}      # [1, T, ...]
  traj = imagine(wm, actor_critic.actor, start, data['is_terminal'],
                 actor_critic.imag_horizon, actor_critic.discount)
  traj['reward'] = tf.cast(wm.heads['reward'](traj['feat']).mean(), tf.float32)
  imag_return = actor_critic.target(traj)[0][0]                     # R_0: [T]

  report = {
      'return': real_return, 'value': value, 'imag_return': imag_return,
      'reward': reward, 'reward_pred': reward_pred,
      'discount': discount, 'discount_pred': discount_pred,
      'terminal': terminal, 'term_prob': 1.0 - discount_pred / gamma,
  }
  report.update(_open_loop(wm, post, data, reward, discount, terminal, open_loop))
  return report


def _discount(wm, feat, gamma):
  if 'discount' in wm.heads:
    return tf.cast(wm.heads['discount'](feat).mean(), tf.float32)
  return gamma * tf.ones(tf.shape(feat)[:-1], tf.float32)


def _open_loop(wm, post, data, reward, discount, terminal, horizon):
  """Errors of the prior rolled k = 1..horizon steps under the real actions."""
  length = tf.shape(reward)[0]
  # Start t, step k: the action that led to s_{t+k} (zero past the end, masked).
  index = tf.range(length)[:, None] + tf.range(1, horizon + 1)[None]   # [T, K]
  valid = tf.cast(index < length, tf.float32)
  index = tf.minimum(index, length - 1)
  actions = tf.gather(data['action'][0], index)                        # [T, K, A]
  prior = wm.dynamics.imagine(actions, post)                           # [T, K, ...]
  feat = tf.cast(wm.dynamics.get_feat(prior), tf.float32)
  count = tf.reduce_sum(valid, 0)                                      # [K]
  nan = tf.fill(tf.shape(count), np.float32(np.nan))

  def error(pred, truth):
    # NaN for a k with no start k steps before the end (an episode shorter than k).
    diff = tf.abs(pred - tf.gather(truth, index))
    diff = tf.reshape(diff, tf.concat([tf.shape(valid), [-1]], 0))
    total = tf.reduce_sum(tf.reduce_mean(diff, -1) * valid, 0)
    return tf.where(count > 0, total / tf.maximum(count, 1.0), nan)

  results = {
      'openl_reward_error': error(
          tf.cast(wm.heads['reward'](feat).mean(), tf.float32), reward),
      'openl_discount_error': error(_discount(wm, feat, wm.discount), discount)}
  decoded = wm.heads['decoder'](feat)
  for key, dist in (decoded.items() if isinstance(decoded, dict) else []):
    truth = tf.cast(data[key][0], tf.float32)
    results[f'openl_{key}_error'] = error(tf.cast(dist.mode(), tf.float32), truth)

  # The terminal step as seen from k steps before it.
  term_prob = 1.0 - _discount(wm, feat, wm.discount) / wm.discount        # [T, K]
  at_terminal = tf.gather(terminal, index) * valid
  hits = tf.reduce_sum(at_terminal, 0)
  results['term_prob_ahead'] = tf.where(
      hits > 0, tf.reduce_sum(term_prob * at_terminal, 0) / tf.maximum(hits, 1.0),
      nan)
  return results


def summarize(reports):
  """Scalar diagnostics over several episode reports (steps pooled).

  value_bias / value_error: mean (and mean absolute) critic error against the real
  return; imag_return_bias / imag_return_error: the same for the imagined return;
  reward_error, discount_error: the heads at real states; term_prob_end: the
  termination probability at real terminal steps (filtered; NaN without one);
  false_term: the mean termination probability at the other steps;
  openl_*_k<k>: open-loop errors k steps ahead (k = 1, 5, 15 where predicted).
  """
  pool = {key: np.concatenate([r[key] for r in reports]) for key in (
      'return', 'value', 'imag_return', 'reward', 'reward_pred', 'discount',
      'discount_pred', 'terminal', 'term_prob')}
  terminal = pool['terminal'] > 0
  term_prob = pool['term_prob']
  summary = {
      'value_bias': np.mean(pool['value'] - pool['return']),
      'value_error': np.mean(np.abs(pool['value'] - pool['return'])),
      'imag_return_bias': np.mean(pool['imag_return'] - pool['return']),
      'imag_return_error': np.mean(np.abs(pool['imag_return'] - pool['return'])),
      'reward_error': np.mean(np.abs(pool['reward_pred'] - pool['reward'])),
      'discount_error': np.mean(np.abs(pool['discount_pred'] - pool['discount'])),
      'term_prob_end': np.mean(term_prob[terminal]) if terminal.any() else np.nan,
      'false_term': np.mean(term_prob[~terminal]) if (~terminal).any() else np.nan,
  }
  for key in reports[0]:
    if not key.startswith(('openl_', 'term_prob_ahead')):
      continue
    curves = np.stack([r[key] for r in reports])
    # The mean over episodes that define a value at each k; NaN where none does (no
    # terminal step k ahead in any episode), without NumPy's empty-slice warning.
    finite = np.isfinite(curves)
    count = finite.sum(0)
    curve = np.where(count > 0, np.where(finite, curves, 0).sum(0) / np.maximum(count, 1),
                     np.nan)
    for k in (1, 5, 15):
      if k <= len(curve):
        summary[f'{key}_k{k}'] = curve[k - 1]
  return {key: float(value) for key, value in summary.items()}
