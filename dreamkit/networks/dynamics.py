"""Latent dynamics: the RSSM with categorical or Gaussian latents. Registry `dynamics`."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from dreamkit import validate
from dreamkit.networks import distributions as dists
from dreamkit.networks import layers as nets
from dreamkit.networks.base import Dynamics
from dreamkit.registry import Registry

tfd = tfp.distributions

registry = Registry('dynamics', Dynamics)

STD_ACTS = {
    'softplus': tf.nn.softplus,
    'sigmoid': tf.sigmoid,
    'sigmoid2': lambda x: 2 * tf.sigmoid(x / 2),
}


class RSSM(Dynamics):
  """DreamerV2's recurrent state-space model; subclasses choose the latent type.

  Prior step: x = act(Dense_hidden(concat(z_prev, a_prev))); h = GRU(x, h_prev);
  stats from act(Dense_hidden(h)) and a linear layer. Posterior step: stats from
  act(Dense_hidden(concat(h, embed))) and a linear layer. `obs_step` zeroes the
  previous state and action of rows whose `is_first` is set, so a sequence may hold
  several episodes. State tensors are float32; layers compute in the policy dtype.

  A subclass defines `_stats(x) -> {key: [B, ...]}` (the linear layer's outputs),
  `get_dist(state)`, `_zeros(batch)` and `stoch_size` (flat size of z).

  The sizes have no default: pipelines bind them through the macros DETER, HIDDEN,
  STOCH (and DISCRETE) of dreamerv2_defaults.gin (the reference: 1024, 1024, 32, 32),
  which both latent types share.
  """

  def __init__(self, deter, hidden, act, norm):
    super().__init__()
    args = validate.Arguments(self)
    self.deter = args.positive_int(deter, 'deter')
    self.hidden = args.positive_int(hidden, 'hidden')
    self.act = nets.get_act(act, args.name('act'))
    norm = nets.check_norm(norm, args.name('norm'))
    self.img_in = keras.layers.Dense(self.hidden, name='img_in')
    self.img_in_norm = nets.NormLayer(norm, name='img_in_norm')
    self.cell = nets.GRUCell(self.deter, norm=True, name='gru')
    self.img_out = keras.layers.Dense(self.hidden, name='img_out')
    self.img_out_norm = nets.NormLayer(norm, name='img_out_norm')
    self.obs_out = keras.layers.Dense(self.hidden, name='obs_out')
    self.obs_out_norm = nets.NormLayer(norm, name='obs_out_norm')
    self.img_dist = keras.layers.Dense(self.stats_size, name='img_dist')
    self.obs_dist = keras.layers.Dense(self.stats_size, name='obs_dist')
    self.action_size = None

  def build_for(self, embed_size, action_size):
    if self.action_size is None:
      self.action_size = action_size
      self.img_in.build([None, self.stoch_size + action_size])
      self.img_in_norm.build([None, self.hidden])
      self.cell.build([None, self.hidden])
      self.img_out.build([None, self.deter])
      self.img_out_norm.build([None, self.hidden])
      self.img_dist.build([None, self.hidden])
    elif action_size != self.action_size:
      raise ValueError(
          f'{type(self).__name__} was built for actions of size {self.action_size}, '
          f'got {action_size}.')
    if embed_size is not None and not self.obs_out.built:
      self.obs_out.build([None, self.deter + embed_size])
      self.obs_out_norm.build([None, self.hidden])
      self.obs_dist.build([None, self.hidden])

  def initial(self, batch):
    state = self._zeros(batch)
    state['deter'] = tf.zeros([batch, self.deter], tf.float32)
    return state

  def get_feat(self, state):
    stoch = tf.cast(state['stoch'], tf.float32)
    stoch = tf.reshape(stoch, tf.concat([tf.shape(stoch)[:self._batch_rank(stoch)],
                                         [self.stoch_size]], 0))
    return tf.concat([stoch, tf.cast(state['deter'], tf.float32)], -1)

  def img_step(self, prev_state, prev_action, sample=True):
    prev_action = tf.convert_to_tensor(prev_action)
    self.build_for(None, prev_action.shape[-1])
    stoch = tf.reshape(prev_state['stoch'], [-1, self.stoch_size])
    x = tf.concat([stoch, tf.cast(prev_action, tf.float32)], -1)
    x = self.act(self.img_in_norm(self.img_in(x)))
    deter = self.cell(x, prev_state['deter'])
    x = self.act(self.img_out_norm(self.img_out(deter)))
    stats = self._stats(self.img_dist(x))
    stoch = self._draw(self.get_dist(stats), sample)
    return {'stoch': stoch, 'deter': tf.cast(deter, tf.float32), **stats}

  def obs_step(self, prev_state, prev_action, embed, is_first, sample=True):
    keep = 1.0 - tf.cast(is_first, tf.float32)
    # Zeroing (not re-initialising) is exact because `initial` is all zeros.
    prev_state = {k: _mask(v, keep) for k, v in prev_state.items()}
    prev_action = _mask(tf.cast(prev_action, tf.float32), keep)
    prior = self.img_step(prev_state, prev_action, sample)
    x = tf.concat([prior['deter'], tf.cast(embed, tf.float32)], -1)
    x = self.act(self.obs_out_norm(self.obs_out(x)))
    stats = self._stats(self.obs_dist(x))
    stoch = self._draw(self.get_dist(stats), sample)
    post = {'stoch': stoch, 'deter': prior['deter'], **stats}
    return post, prior

  def kl_loss(self, post, prior, forward=False, balance=0.8, free=0.0, free_avg=True):
    """KL balancing with free nats, as in DreamerV2.

    Returns (loss, value): `loss` = mix * max(KL(lhs || sg(rhs)), free)
    + (1 - mix) * max(KL(sg(lhs) || rhs), free), where (lhs, rhs, mix) =
    (post, prior, 1 - balance), or (prior, post, balance) when `forward`. So with
    balance 0.8 the prior is pulled towards the posterior with weight 0.8 and the
    posterior towards the prior with 0.2. Free nats clip the batch mean when
    `free_avg`, else each element. `value` is KL(lhs || rhs) [B, T].
    """
    kld = tfd.kl_divergence
    sg = lambda state: {k: tf.stop_gradient(v) for k, v in state.items()}
    lhs, rhs = (prior, post) if forward else (post, prior)
    mix = balance if forward else 1 - balance
    value_lhs = value = kld(self.get_dist(lhs), self.get_dist(sg(rhs)))
    value_rhs = kld(self.get_dist(sg(lhs)), self.get_dist(rhs))
    if free_avg:
      loss_lhs = tf.maximum(tf.reduce_mean(value_lhs), free)
      loss_rhs = tf.maximum(tf.reduce_mean(value_rhs), free)
    else:
      loss_lhs = tf.reduce_mean(tf.maximum(value_lhs, free))
      loss_rhs = tf.reduce_mean(tf.maximum(value_rhs, free))
    loss = mix * loss_lhs + (1 - mix) * loss_rhs
    return loss, value

  def _draw(self, dist, sample):
    return dist.sample() if sample else dist.mode()

  def _batch_rank(self, stoch):
    raise NotImplementedError

  @property
  def stats_size(self):
    raise NotImplementedError

  @property
  def stoch_size(self):
    raise NotImplementedError

  def _zeros(self, batch):
    raise NotImplementedError

  def _stats(self, x):
    raise NotImplementedError


def _mask(x, keep):
  keep = tf.reshape(keep, [-1] + [1] * (x.shape.rank - 1))
  return x * tf.cast(keep, x.dtype)


@registry.register
class CategoricalRSSM(RSSM):
  """RSSM with `stoch` categorical latents of `discrete` classes (DreamerV2's default).

  z is one-hot [B, stoch, discrete], sampled with straight-through gradients.
  State: {'logit': [B, S, K], 'stoch': [B, S, K], 'deter': [B, D]}; feature
  [B, S*K + D].

  Args:
    deter: GRU size.
    hidden: width of the dense layers around the GRU.
    stoch: number of categorical variables.
    discrete: classes per variable.
    act: activation of the hidden layers.
    norm: 'none' or 'layer' on the hidden layers.
  """

  def __init__(self, deter, hidden, stoch, discrete, act='elu', norm='none'):
    args = validate.Arguments(self)
    self.stoch = args.positive_int(stoch, 'stoch')
    # One class would be a constant: for continuous latents, @dynamics.GaussianRSSM.
    self.discrete = args.int_at_least(
        discrete, 'discrete', 2, 'of at least 2 (GaussianRSSM has continuous latents)')
    super().__init__(deter, hidden, act, norm)

  @property
  def stats_size(self):
    return self.stoch * self.discrete

  @property
  def stoch_size(self):
    return self.stoch * self.discrete

  def _batch_rank(self, stoch):
    return stoch.shape.rank - 2

  def _zeros(self, batch):
    zeros = tf.zeros([batch, self.stoch, self.discrete], tf.float32)
    return {'logit': zeros, 'stoch': zeros}

  def _stats(self, x):
    return {'logit': tf.reshape(tf.cast(x, tf.float32),
                                [-1, self.stoch, self.discrete])}

  def get_dist(self, state):
    logit = tf.cast(state['logit'], tf.float32)
    return tfd.Independent(dists.OneHotDist(logits=logit), 1)


@registry.register
class GaussianRSSM(RSSM):
  """RSSM with a diagonal Gaussian latent of `stoch` dims (the DreamerV2 ablation).

  std = std_act(x) + min_std ('sigmoid2': 2 sigmoid(x / 2)); reparameterised
  samples. State: {'mean', 'std', 'stoch': [B, S], 'deter': [B, D]}; feature
  [B, S + D].

  Args:
    deter: GRU size.
    hidden: width of the dense layers around the GRU.
    stoch: latent dimensions.
    act: activation of the hidden layers.
    norm: 'none' or 'layer' on the hidden layers.
    std_act: 'sigmoid2', 'softplus' or 'sigmoid'.
    min_std: added to the std.
  """

  def __init__(self, deter, hidden, stoch, act='elu', norm='none',
               std_act='sigmoid2', min_std=0.1):
    args = validate.Arguments(self)
    self.stoch = args.positive_int(stoch, 'stoch')
    self.std_act = STD_ACTS[args.one_of(std_act, 'std_act', STD_ACTS, 'a std activation')]
    self.min_std = args.non_negative(min_std, 'min_std')
    super().__init__(deter, hidden, act, norm)

  @property
  def stats_size(self):
    return 2 * self.stoch

  @property
  def stoch_size(self):
    return self.stoch

  def _batch_rank(self, stoch):
    return stoch.shape.rank - 1

  def _zeros(self, batch):
    zeros = tf.zeros([batch, self.stoch], tf.float32)
    return {'mean': zeros, 'std': zeros, 'stoch': zeros}

  def _stats(self, x):
    mean, std = tf.split(tf.cast(x, tf.float32), 2, -1)
    return {'mean': mean, 'std': self.std_act(std) + self.min_std}

  def get_dist(self, state):
    mean = tf.cast(state['mean'], tf.float32)
    std = tf.cast(state['std'], tf.float32)
    return tfd.Independent(tfd.Normal(mean, std), 1)
