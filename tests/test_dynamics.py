"""The RSSMs: shapes, straight-through samples, KL balancing, free nats, is_first."""

import inspect

import numpy as np
import pytest
import tensorflow as tf

from dreamkit.errors import ConfigError
from dreamkit.networks import distributions
from dreamkit.networks import dynamics
from dreamkit.optim import Optimizer

B, T, E, A = 2, 4, 8, 3
TINY = {
    'CategoricalRSSM': dict(deter=16, hidden=16, stoch=4, discrete=4),
    'GaussianRSSM': dict(deter=16, hidden=16, stoch=4),
}
SHAPES = {
    'CategoricalRSSM': {'logit': (4, 4), 'stoch': (4, 4), 'deter': (16,)},
    'GaussianRSSM': {'mean': (4,), 'std': (4,), 'stoch': (4,), 'deter': (16,)},
}
FEAT = {'CategoricalRSSM': 16 + 16, 'GaussianRSSM': 4 + 16}


def make(name):
  return dynamics.registry.get(name)(**TINY[name])


def inputs(seed=0, length=T):
  rng = np.random.default_rng(seed)
  embed = tf.constant(rng.normal(size=(B, length, E)), tf.float32)
  action = tf.constant(rng.normal(size=(B, length, A)), tf.float32)
  is_first = np.zeros((B, length), bool)
  is_first[:, 0] = True
  return embed, action, tf.constant(is_first)


@pytest.fixture(scope='module', params=sorted(TINY))
def model(request):
  return request.param, make(request.param)


def test_every_registered_dynamics_has_tiny_settings():
  assert dynamics.registry.names(builtin_only=True) == sorted(TINY)


@pytest.mark.parametrize('name,defaults', [
    ('CategoricalRSSM', dict(act='elu', norm='none')),
    ('GaussianRSSM', dict(act='elu', norm='none', std_act='sigmoid2', min_std=0.1)),
])
def test_only_the_sizes_lack_a_default(name, defaults):
  """The pipelines' macros (DETER, HIDDEN, STOCH, DISCRETE) bind the sizes; every
  other default is the reference's."""
  (entry,) = [e for e in dynamics.registry.entries() if e.name == name]
  empty = inspect.Parameter.empty
  assert [n for n, default in entry.parameters if default is empty] == list(TINY[name])
  assert {n: d for n, d in entry.parameters if d is not empty} == defaults


def test_observe_imagine_shapes(model):
  name, rssm = model
  embed, action, is_first = inputs()
  post, prior = rssm.observe(embed, action, is_first)
  for state in (post, prior):
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: (B, T) + s for k, s in SHAPES[name].items()}
    assert all(v.dtype == tf.float32 for v in state.values())
  assert rssm.get_feat(post).shape == (B, T, FEAT[name])
  start = {k: v[:, -1] for k, v in post.items()}
  imagined = rssm.imagine(action, start)
  assert {k: tuple(v.shape) for k, v in imagined.items()} == {
      k: (B, T) + s for k, s in SHAPES[name].items()}
  step = rssm.img_step(start, action[:, 0])
  assert rssm.get_feat(step).shape == (B, FEAT[name])
  assert rssm.get_dist(post).batch_shape == (B, T)
  initial = rssm.initial(B)
  assert {k: tuple(v.shape) for k, v in initial.items()} == {
      k: (B,) + s for k, s in SHAPES[name].items()}


def test_is_first_resets_state_like_a_fresh_start(model):
  """Observing [episode 1, episode 2] gives episode 2 the posteriors it gets alone."""
  _, rssm = model
  embed1, action1, first1 = inputs(seed=1, length=3)
  embed2, action2, first2 = inputs(seed=2, length=4)
  # A non-zero action at the episode start must be ignored (zeroed) as well.
  alone_action = tf.concat([tf.zeros_like(action2[:, :1]), action2[:, 1:]], 1)
  alone, _ = rssm.observe(embed2, alone_action, first2, sample=False)
  joined, _ = rssm.observe(
      tf.concat([embed1, embed2], 1), tf.concat([action1, action2], 1),
      tf.concat([first1, first2], 1), sample=False)
  for key in alone:
    np.testing.assert_allclose(joined[key][:, 3:], alone[key], atol=1e-5, err_msg=key)
  # Without the reset the second episode would remember the first.
  no_reset, _ = rssm.observe(
      tf.concat([embed1, embed2], 1), tf.concat([action1, action2], 1),
      tf.concat([first1, tf.zeros_like(first2)], 1), sample=False)
  assert not np.allclose(no_reset['deter'][:, 3:], alone['deter'], atol=1e-3)


@pytest.mark.parametrize('name', sorted(TINY))
def test_imagine_on_a_fresh_model_inside_tf_function(name):
  rssm = make(name)
  _, action, _ = inputs()
  prior = tf.function(lambda a: rssm.imagine(a, rssm.initial(B)))(action)
  assert prior['deter'].shape == (B, T, 16)
  assert rssm.img_in.built and not rssm.obs_out.built


def test_observe_continues_from_a_given_state(model):
  _, rssm = model
  embed, action, _ = inputs(seed=3)
  no_first = tf.zeros([B, T], tf.bool)
  full, _ = rssm.observe(embed, action, no_first, sample=False)
  head, _ = rssm.observe(embed[:, :2], action[:, :2], no_first[:, :2], sample=False)
  tail, _ = rssm.observe(
      embed[:, 2:], action[:, 2:], no_first[:, 2:],
      {k: v[:, -1] for k, v in head.items()}, sample=False)
  np.testing.assert_allclose(full['deter'][:, 2:], tail['deter'], atol=1e-5)


def test_straight_through_one_hot_sample():
  logits = tf.Variable(tf.random.normal([5, 4, 6]))
  weights = tf.random.normal([6])
  with tf.GradientTape() as tape:
    sample = distributions.OneHotDist(logits=logits).sample()
    loss = tf.reduce_sum(sample * weights)
  values = sample.numpy()
  assert set(np.unique(values)) <= {0.0, 1.0}
  np.testing.assert_array_equal(values.sum(-1), 1.0)
  grad = tape.gradient(loss, logits).numpy()
  assert np.abs(grad).min() > 0


def test_categorical_sample_passes_gradient_to_the_posterior_layer():
  rssm = make('CategoricalRSSM')
  embed, action, is_first = inputs()
  with tf.GradientTape() as tape:
    post, _ = rssm.observe(embed, action, is_first)
    loss = tf.reduce_sum(post['stoch'] * tf.random.normal(post['stoch'].shape))
  grad = tape.gradient(loss, rssm.obs_dist.kernel)
  assert grad is not None and np.abs(grad.numpy()).sum() > 0
  assert set(np.unique(post['stoch'].numpy())) <= {0.0, 1.0}


def _stats(name, seed):
  rng = np.random.default_rng(seed)
  if name == 'CategoricalRSSM':
    return {'logit': tf.Variable(rng.normal(size=(B, T, 4, 4)), dtype=tf.float32)}
  return {'mean': tf.Variable(rng.normal(size=(B, T, 4)), dtype=tf.float32),
          'std': tf.Variable(rng.uniform(0.5, 2, size=(B, T, 4)), dtype=tf.float32)}


@pytest.mark.parametrize('forward', [False, True])
def test_kl_balancing_weights_prior_and_posterior(model, forward):
  name, rssm = model
  post, prior = _stats(name, 1), _stats(name, 2)
  variables = list(post.values()) + list(prior.values())
  with tf.GradientTape(persistent=True) as tape:
    loss, value = rssm.kl_loss(post, prior, forward, 0.8, 0.0, True)
    lhs, rhs = (prior, post) if forward else (post, prior)
    plain = tf.reduce_mean(
        distributions.tfd.kl_divergence(rssm.get_dist(lhs), rssm.get_dist(rhs)))
  balanced = tape.gradient(loss, variables)
  explicit = tape.gradient(plain, variables)
  n = len(post)
  # The prior learns with weight 0.8, the posterior with 0.2 (4x less).
  for got, want in zip(balanced[:n], explicit[:n]):
    np.testing.assert_allclose(got, 0.2 * want, rtol=1e-4, atol=1e-7)
  for got, want in zip(balanced[n:], explicit[n:]):
    np.testing.assert_allclose(got, 0.8 * want, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(loss, plain, rtol=1e-5)
  assert value.shape == (B, T)


def test_free_nats(model):
  name, rssm = model
  post, prior = _stats(name, 1), _stats(name, 2)
  variables = list(post.values()) + list(prior.values())
  _, value = rssm.kl_loss(post, prior, False, 0.8, 0.0, True)
  mean = float(tf.reduce_mean(value))
  with tf.GradientTape() as tape:
    loss, _ = rssm.kl_loss(post, prior, False, 0.8, mean + 1.0, True)
  assert float(loss) == pytest.approx(mean + 1.0)
  assert all(g is None or not np.any(g.numpy()) for g in tape.gradient(loss, variables))
  # Per element (free_avg False): only steps above `free` get gradients.
  free = float(np.median(value))
  with tf.GradientTape() as tape:
    loss, _ = rssm.kl_loss(post, prior, False, 0.8, free, False)
  want = np.mean(np.maximum(value.numpy(), free))
  assert float(loss) == pytest.approx(want, rel=1e-5)
  grad = tape.gradient(loss, variables[0]).numpy()
  below = value.numpy() < free
  assert not np.any(grad[below]) and np.any(grad[~below])


def test_gaussian_std_is_sigmoid2_plus_min_std():
  rssm = dynamics.GaussianRSSM(deter=16, hidden=16, stoch=4, min_std=0.1)
  x = tf.constant([[-50.0] * 4 + [-50.0, 0.0, 2.0, 50.0]])
  stats = rssm._stats(x)
  want = 2 / (1 + np.exp(-np.array([-50.0, 0.0, 2.0, 50.0]) / 2)) + 0.1
  np.testing.assert_allclose(stats['std'][0], want, rtol=1e-5)


@pytest.mark.parametrize('name', dynamics.registry.names())
def test_registered_dynamics_trains_one_step(name):
  rssm = make(name)
  embed, action, is_first = inputs()
  rssm.observe(embed, action, is_first)
  before = [v.numpy().copy() for v in rssm.trainable_variables]
  optimizer = Optimizer('dyn', 1e-3)
  with tf.GradientTape() as tape:
    post, prior = rssm.observe(embed, action, is_first)
    loss, _ = rssm.kl_loss(post, prior, False, 0.8, 0.0, True)
    loss += tf.reduce_mean(tf.square(rssm.get_feat(post)))
  metrics = optimizer(tape, loss, [rssm])
  assert float(metrics['dyn_skipped']) == 0
  changed = [not np.array_equal(b, v.numpy())
             for b, v in zip(before, rssm.trainable_variables)]
  assert all(changed), [v.path for v, c in zip(rssm.trainable_variables, changed) if not c]


def test_bad_settings_are_config_errors():
  with pytest.raises(ConfigError, match='std_act'):
    dynamics.GaussianRSSM(**TINY['GaussianRSSM'], std_act='exp')
  with pytest.raises(ConfigError, match='discrete'):
    dynamics.CategoricalRSSM(**{**TINY['CategoricalRSSM'], 'discrete': 1})
  with pytest.raises(ConfigError, match='activation'):
    dynamics.CategoricalRSSM(**TINY['CategoricalRSSM'], act='elux')
