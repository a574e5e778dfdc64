"""Output distributions of dreamkit networks, all on float32 parameters (TFP).

TFP cannot take float16/bfloat16 parameters everywhere (TruncatedNormal.log_prob
fails), so every distribution here casts its parameters to float32 first, whatever
the Keras precision policy computed them in.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from dreamkit.errors import ConfigError

tfd = tfp.distributions
tfb = tfp.bijectors

DISTS = ('mse', 'normal', 'binary', 'onehot', 'trunc_normal', 'tanh_normal')


class OneHotDist(tfd.OneHotCategorical):
  """One-hot categorical whose `sample()` passes straight-through gradients.

  The sample's value is exactly one-hot; its gradient is the gradient of the
  probabilities: `sample + probs - stop_gradient(probs)`. Samples are float32.
  """

  def __init__(self, logits=None, probs=None, validate_args=False):
    parameters = dict(logits=logits, probs=probs, validate_args=validate_args)
    logits = None if logits is None else tf.cast(logits, tf.float32)
    probs = None if probs is None else tf.cast(probs, tf.float32)
    super().__init__(
        logits=logits, probs=probs, dtype=tf.float32, validate_args=validate_args)
    self._parameters = parameters

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return tfd.OneHotCategorical._parameter_properties(dtype, num_classes)

  def sample(self, sample_shape=(), seed=None, name='sample', **kwargs):
    sample = tf.stop_gradient(super().sample(sample_shape, seed=seed, name=name))
    probs = self.probs_parameter()
    probs = tf.broadcast_to(probs, tf.shape(sample))
    # Parenthesised so the forward value stays exactly one-hot: (p - sg(p)) is 0.
    return sample + (probs - tf.stop_gradient(probs))

  def mode(self, name='mode', **kwargs):
    return tf.cast(super().mode(name=name), tf.float32)


class TruncNormalDist(tfd.TruncatedNormal):
  """Truncated normal whose samples stay `clip` inside [low, high] (straight-through)."""

  def __init__(self, loc, scale, low=-1.0, high=1.0, clip=1e-6, mult=1.0):
    parameters = dict(loc=loc, scale=scale, low=low, high=high, clip=clip, mult=mult)
    super().__init__(
        tf.cast(loc, tf.float32), tf.cast(scale, tf.float32), low, high)
    self._parameters = parameters
    self._clip = clip
    self._mult = mult

  def sample(self, sample_shape=(), seed=None, name='sample', **kwargs):
    event = super().sample(sample_shape, seed=seed, name=name)
    if self._clip:
      clipped = tf.clip_by_value(event, self.low + self._clip, self.high - self._clip)
      event = event - tf.stop_gradient(event) + tf.stop_gradient(clipped)
    if self._mult != 1:
      event = event * self._mult
    return event

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return tfd.TruncatedNormal._parameter_properties(dtype, num_classes)


class TanhBijector(tfb.Bijector):
  """tanh whose inverse clips to (-1, 1) so boundary actions have a finite log-prob."""

  def __init__(self, validate_args=False, name='tanh'):
    super().__init__(
        forward_min_event_ndims=0, validate_args=validate_args, name=name)

  def _forward(self, x):
    return tf.tanh(x)

  def _inverse(self, y):
    y = tf.clip_by_value(y, -0.99999997, 0.99999997)
    return tf.atanh(y)

  def _forward_log_det_jacobian(self, x):
    # log(1 - tanh(x)^2), written stably.
    return 2.0 * (tf.math.log(2.0) - x - tf.nn.softplus(-2.0 * x))


class SampleDist:
  """Wraps a distribution without closed-form moments; estimates them from samples.

  `mean()` and `entropy()` average `samples` draws, `mode()` is the draw with the
  highest log-prob; everything else is forwarded to the wrapped distribution.
  """

  def __init__(self, dist, samples=100):
    self._dist = dist
    self._samples = samples

  @property
  def name(self):
    return 'SampleDist'

  def __getattr__(self, name):
    return getattr(self._dist, name)

  def mean(self):
    return tf.reduce_mean(self._dist.sample(self._samples), 0)

  def mode(self):
    sample = self._dist.sample(self._samples)
    return _gather_best(sample, tf.argmax(self._dist.log_prob(sample), 0))

  def entropy(self):
    sample = self._dist.sample(self._samples)
    return -tf.reduce_mean(self._dist.log_prob(sample), 0)


def _gather_best(sample, index):
  """sample [N, *batch, *event], index [*batch] -> sample[index[b], b] : [*batch, *event]."""
  batch_rank = index.shape.rank
  moved = tf.transpose(
      sample, list(range(1, batch_rank + 1)) + [0] +
      list(range(batch_rank + 1, sample.shape.rank)))
  return tf.gather(moved, index, axis=batch_rank, batch_dims=batch_rank)


def make(name, out, std=None, event_dims=1, min_std=0.1, init_std=0.0):
  """The distribution `name` (one of DISTS) from network outputs.

  Args:
    name: 'mse' (Normal, std 1), 'normal' (learned std), 'binary' (Bernoulli logits),
      'onehot' (straight-through one-hot over the last axis), 'trunc_normal' (on
      [-1, 1], std = 2 sigmoid((x + init_std) / 2) + min_std), 'tanh_normal' (mean
      5 tanh(x / 5), std = softplus(x + init_std) + min_std, squashed by tanh).
    out: [..., *shape] mean or logits, any float dtype.
    std: [..., *shape] raw std outputs (needed by normal, trunc_normal, tanh_normal).
    event_dims: how many trailing axes form one event.
  """
  out = tf.cast(out, tf.float32)
  std = None if std is None else tf.cast(std, tf.float32)
  if name == 'mse':
    return tfd.Independent(tfd.Normal(out, 1.0), event_dims)
  if name == 'normal':
    return tfd.Independent(tfd.Normal(out, tf.nn.softplus(std) + min_std), event_dims)
  if name == 'binary':
    return tfd.Independent(tfd.Bernoulli(logits=out, dtype=tf.float32), event_dims)
  if name == 'onehot':
    return OneHotDist(logits=out)
  if name == 'trunc_normal':
    std = 2 * tf.sigmoid((std + init_std) / 2) + min_std
    return tfd.Independent(TruncNormalDist(tf.tanh(out), std, -1, 1), event_dims)
  if name == 'tanh_normal':
    mean = 5 * tf.tanh(out / 5)
    std = tf.nn.softplus(std + init_std) + min_std
    dist = tfd.TransformedDistribution(tfd.Normal(mean, std), TanhBijector())
    return SampleDist(tfd.Independent(dist, event_dims))
  raise ConfigError(f"Unknown distribution '{name}'. Use one of: {', '.join(DISTS)}.")
