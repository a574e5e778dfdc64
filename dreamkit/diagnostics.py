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

Everything runs on the CPU or GPU in `tf.function`s; nothing is trained, nothing is
written. The episode goes through them `chunk` steps at a time (the posterior carries
its state across), so memory stays bounded whatever the episode's length: the open loop
decodes chunk x K frames per call, not T x K (an Atari episode can be 27,000 steps).
"""

import numpy as np
import tensorflow as tf

from dreamkit.behavior.imagination import imagine

OPEN_LOOP = 15  # the longest open-loop prediction checked, steps (the imagination horizon)
CHUNK = 256     # real steps per call (Atari: 256 x 15 decoded frames, ~0.3 GB at most)


def episode_report(world_model, actor_critic, episode, open_loop=OPEN_LOOP, chunk=CHUNK,
                   sample=True):
  """Per-step beliefs against the real episode {key: [T, ...]}; see the module doc.

  `sample=False` takes the modes of the latents and actions instead of samples (a
  deterministic report); the chunk size changes nothing but the memory.
  """
  episode = {key: np.asarray(value) for key, value in episode.items()
             if not key.startswith('log_')}
  length = len(episode['reward'])
  horizon, chunk = int(open_loop), int(chunk)
  if chunk < 1:
    raise ValueError(f'episode_report: chunk must be at least 1, got {chunk}')
  starts = range(0, length, chunk)

  # The posterior along the whole episode, chunk by chunk, its state carried over.
  state = world_model.dynamics.initial(1)
  posts = []
  for start in starts:
    part = {key: value[None, start:start + chunk] for key, value in episode.items()}
    post, state = _posterior_fn(world_model, part, state, sample)
    posts.append(post)
  post = {key: tf.concat([p[key] for p in posts], 0) for key in posts[0]}   # [T, ...]

  # The beliefs at every real state; the open loop from a chunk's states reads the
  # episode up to `horizon` steps past the chunk's end.
  parts = []
  for start in starts:
    end = min(start + chunk, length)
    window = {key: value[None, start:min(end + horizon, length)]
              for key, value in episode.items()}
    states = {key: value[start:end] for key, value in post.items()}
    parts.append({key: value.numpy() for key, value in _beliefs_fn(
        world_model, actor_critic, states, window, horizon, sample).items()})
  report = {}
  for key in parts[0]:
    if key.startswith(('sum_', 'count_')):
      report[key] = np.sum([p[key] for p in parts], 0)
    else:
      report[key] = np.concatenate([p[key] for p in parts])

  # Real returns, backwards; a cut episode bootstraps with the critic's last value.
  reward, discount, terminal = report['reward'], report['discount'], report['terminal']
  gamma = np.float32(world_model.discount)
  real_return = np.empty_like(reward)
  later = reward[-1] + (1 - terminal[-1]) * gamma * report['value'][-1]
  real_return[-1] = later
  for t in range(length - 2, -1, -1):
    later = reward[t] + discount[t] * later
    real_return[t] = later
  report['return'] = real_return

  # Open-loop errors: the mean over the starts k steps before a real step, NaN for a k
  # with none (an episode shorter than k; no terminal step k ahead).
  for key in [key for key in report if key.startswith('sum_')]:
    name = key[len('sum_'):]
    total = report.pop(key)
    count = report['count_term_prob_ahead' if name == 'term_prob_ahead' else 'count_openl']
    with np.errstate(invalid='ignore', divide='ignore'):
      report[name] = np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(
          np.float32)
  for key in [key for key in report if key.startswith('count_')]:
    del report[key]
  return report


@tf.function(reduce_retracing=True, autograph=False)
def _posterior_fn(world_model, batch, state, sample):
  """The posterior of a chunk [1, n] from `state`: ({key: [n, ...]}, the last state)."""
  wm = world_model
  data = wm.preprocess(batch)
  post, _ = wm.dynamics.observe(
      wm.encoder(data), data['action'], data['is_first'], state, sample=sample)
  last = {key: value[:, -1] for key, value in post.items()}
  return {key: value[0] for key, value in post.items()}, last


@tf.function(reduce_retracing=True, autograph=False)
def _beliefs_fn(world_model, actor_critic, post, window, horizon, sample):
  return _beliefs(world_model, actor_critic, post, window, horizon, sample)


def _beliefs(world_model, actor_critic, post, window, horizon, sample):
  """The beliefs at the n states `post` {key: [n, ...]}: per-step [n] arrays, and the
  open loop's per-k sums and counts ([K]) over them. `window` {key: [1, m, ...]} is
  the episode from the first of those states on, m <= n + horizon steps."""
  wm = world_model
  data = wm.preprocess(window)
  feat = tf.cast(wm.dynamics.get_feat(post), tf.float32)           # [n, F]
  count = tf.shape(feat)[0]
  gamma = wm.discount
  reward = data['reward'][0]                                       # [m]
  terminal = tf.cast(data['is_terminal'][0], tf.float32)
  discount = gamma * (1.0 - terminal)
  discount_pred = _discount(wm, feat, gamma)

  # The critic's target from every real state, imagined with the actor.
  start = {key: value[None] for key, value in post.items()}      # [1, n, ...]
  traj = imagine(wm, actor_critic.actor, start, data['is_terminal'][:, :count],
                 actor_critic.imag_horizon, actor_critic.discount, sample=sample)
  traj['reward'] = tf.cast(wm.heads['reward'](traj['feat']).mean(), tf.float32)

  beliefs = {
      'value': tf.cast(actor_critic.critic(feat).mode(), tf.float32),
      'imag_return': actor_critic.target(traj)[0][0],                # R_0: [n]
      'reward': reward[:count], 'reward_pred': tf.cast(wm.heads['reward'](feat).mean(),
                                                       tf.float32),
      'discount': discount[:count], 'discount_pred': discount_pred,
      'terminal': terminal[:count], 'term_prob': 1.0 - discount_pred / gamma,
  }
  beliefs.update(_open_loop(wm, post, data, reward, discount, terminal, horizon, sample))
  return beliefs


def _discount(wm, feat, gamma):
  if 'discount' in wm.heads:
    return tf.cast(wm.heads['discount'](feat).mean(), tf.float32)
  return gamma * tf.ones(tf.shape(feat)[:-1], tf.float32)


def _open_loop(wm, post, data, reward, discount, terminal, horizon, sample):
  """The prior rolled k = 1..horizon steps under the real actions from each of the
  states `post`: per k, the sums of its absolute errors over the starts that have a
  real step k ahead (`sum_openl_*`, their number `count_openl`), and of the
  termination probability it gives real terminal steps (`sum_term_prob_ahead`,
  `count_term_prob_ahead`)."""
  starts = tf.shape(post['deter'])[0]
  length = tf.shape(reward)[0]
  # Start t, step k: the action that led to s_{t+k} (zero past the end, masked).
  index = tf.range(starts)[:, None] + tf.range(1, horizon + 1)[None]   # [n, K]
  valid = tf.cast(index < length, tf.float32)
  index = tf.minimum(index, length - 1)
  actions = tf.gather(data['action'][0], index)                        # [n, K, A]
  prior = wm.dynamics.imagine(actions, post, sample=sample)            # [n, K, ...]
  feat = tf.cast(wm.dynamics.get_feat(prior), tf.float32)

  def error(pred, truth):
    diff = tf.abs(pred - tf.gather(truth, index))
    diff = tf.reshape(diff, tf.concat([tf.shape(valid), [-1]], 0))
    return tf.reduce_sum(tf.reduce_mean(diff, -1) * valid, 0)

  results = {
      'count_openl': tf.reduce_sum(valid, 0),
      'sum_openl_reward_error': error(
          tf.cast(wm.heads['reward'](feat).mean(), tf.float32), reward),
      'sum_openl_discount_error': error(_discount(wm, feat, wm.discount), discount)}
  decoded = wm.heads['decoder'](feat)
  for key, dist in (decoded.items() if isinstance(decoded, dict) else []):
    truth = tf.cast(data[key][0], tf.float32)
    results[f'sum_openl_{key}_error'] = error(tf.cast(dist.mode(), tf.float32), truth)

  # The terminal step as seen from k steps before it.
  term_prob = 1.0 - _discount(wm, feat, wm.discount) / wm.discount        # [n, K]
  at_terminal = tf.gather(terminal, index) * valid
  results['count_term_prob_ahead'] = tf.reduce_sum(at_terminal, 0)
  results['sum_term_prob_ahead'] = tf.reduce_sum(term_prob * at_terminal, 0)
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
