"""The interfaces of the world model's swappable parts: Encoder, Dynamics, Head.

Each is a `keras.layers.Layer` (so its sub-layers are tracked and trained) and lists
the methods a registered component must implement in `required_methods`; the kind's
`Registry` rejects a class that leaves one out.
"""

import keras
import tensorflow as tf

from dreamkit.networks import layers as nets


class Encoder(keras.layers.Layer):
  """Maps a preprocessed observation dict to one embedding per step.

      embed = encoder(obs)    # obs: {key: float [B, T, ...] or [B, ...]}
                              # embed: [B, T, E] or [B, E]

  `obs` is the output of `WorldModel.preprocess`: images float in [-0.5, 0.5]
  `[..., H, W, C]`, vector keys float `[..., D]`. The keys `action`, `reward`,
  `discount`, `is_*` and `log_*` are never inputs (see `input_keys`).
  """

  required_methods = ('call',)

  def call(self, obs):
    raise NotImplementedError


class Dynamics(keras.layers.Layer):
  """Latent dynamics (an RSSM): filters observations and imagines ahead.

      state = dynamics.initial(batch)                                # {key: [B, ...]}
      post, prior = dynamics.observe(embed, action, is_first, state) # [B, T, ...] dicts
      prior = dynamics.imagine(action, state)                        # [B, T, ...] dict
      post, prior = dynamics.obs_step(prev_state, prev_action, embed, is_first)
      prior = dynamics.img_step(prev_state, prev_action)             # [B, ...] dicts
      feat = dynamics.get_feat(state)                                # [..., F]
      dist = dynamics.get_dist(state)                                # over the stoch part
      loss, value = dynamics.kl_loss(post, prior, forward, balance, free, free_avg)

  `embed` is `[B, T, E]`, `action` `[B, T, A]` (the action that led to each step),
  `is_first` `[B, T]` bool. `observe` and `imagine` scan `obs_step` / `img_step` over
  time with `tf.scan`; the step methods are what a new dynamics model implements.
  """

  required_methods = (
      'initial', 'obs_step', 'img_step', 'get_feat', 'get_dist', 'kl_loss')

  def initial(self, batch):
    """The zero state for `batch` sequences: {key: [batch, ...]}."""
    raise NotImplementedError

  def obs_step(self, prev_state, prev_action, embed, is_first, sample=True):
    """One filtering step: ([B, ...] dict, [B, A], [B, E], [B] bool) -> (post, prior)."""
    raise NotImplementedError

  def img_step(self, prev_state, prev_action, sample=True):
    """One prediction step: ([B, ...] dict, [B, A]) -> prior."""
    raise NotImplementedError

  def get_feat(self, state):
    """The feature every head reads: [..., F] float32."""
    raise NotImplementedError

  def get_dist(self, state):
    """The distribution of the stochastic state (float32 parameters)."""
    raise NotImplementedError

  def kl_loss(self, post, prior, forward, balance, free, free_avg):
    """(scalar loss, [B, T] KL value); see the reference's KL balancing."""
    raise NotImplementedError

  def build_for(self, embed_size, action_size):
    """Creates the variables before any `tf.scan` body runs (sizes known from data)."""

  def observe(self, embed, action, is_first, state=None, sample=True):
    """Filters a sequence: [B, T, E], [B, T, A], [B, T] -> (post, prior), [B, T, ...]."""
    embed = tf.convert_to_tensor(embed)
    action = tf.convert_to_tensor(action)
    self.build_for(embed.shape[-1], action.shape[-1])
    if state is None:
      state = self.initial(tf.shape(action)[0])
    is_first = tf.cast(is_first, tf.bool)

    def step(prev, inputs):
      return self.obs_step(prev[0], *inputs, sample=sample)

    post, prior = tf.scan(
        step, (nets.swap(action), nets.swap(embed), nets.swap(is_first)),
        (state, state))
    post = {k: nets.swap(v) for k, v in post.items()}
    prior = {k: nets.swap(v) for k, v in prior.items()}
    return post, prior

  def imagine(self, action, state=None, sample=True):
    """Predicts from `state` under `action` [B, T, A] -> prior [B, T, ...]."""
    action = tf.convert_to_tensor(action)
    self.build_for(None, action.shape[-1])
    if state is None:
      state = self.initial(tf.shape(action)[0])
    prior = tf.scan(
        lambda prev, act: self.img_step(prev, act, sample=sample),
        nets.swap(action), state)
    return {k: nets.swap(v) for k, v in prior.items()}


class Head(keras.layers.Layer):
  """Predicts a distribution from the model feature.

      dist = head(feat)       # feat [..., F] -> tfd.Distribution, batch shape [...]
      dists = decoder(feat)   # decoders: {obs key: tfd.Distribution}

  Heads are bound in gin as factories: the world model calls `Head(shape)` (or
  `Decoder(shapes)` with `{key: shape}`) and then calls the head on features. Where
  the method fixes the distribution, the factory also gets `dist=`: the discount
  head `Head((), dist='binary')`, the actor `Head((A,), dist='onehot')` or
  `dist='trunc_normal'`.
  Distributions are built from float32 parameters whatever the precision policy.
  """

  required_methods = ('call',)

  def call(self, feat):
    raise NotImplementedError


RESERVED_KEYS = ('action', 'reward', 'discount')


def input_keys(obs):
  """The keys of `obs` that are model inputs (not action, reward, discount, is_*, log_*)."""
  return [
      key for key in obs
      if key not in RESERVED_KEYS and not key.startswith(('is_', 'log_'))]
