"""DreamerV2's world model: encoder, latent dynamics and heads, trained together.

    wm = WorldModel(obs_space, act_space, encoder, dynamics, decoder, reward_head,
                    discount_head)              # factories; gin binds them
    state, outputs, metrics = wm.train(batch)   # batch {key: [B, T, ...]}, one Adam step

Every part is swappable through its registry (`encoders`, `dynamics`, `heads`):

    WorldModel.dynamics = @dynamics.GaussianRSSM
"""

import gin
import keras
import tensorflow as tf

from dreamkit import validate
from dreamkit.errors import ConfigError
from dreamkit.networks import dynamics as dynamics_lib
from dreamkit.networks import encoders as encoders_lib
from dreamkit.networks import heads as heads_lib
from dreamkit.networks.base import input_keys
from dreamkit.optim import Optimizer
from dreamkit.spaces import action_size

REWARD_CLIPS = {'tanh': tf.tanh, 'identity': tf.identity, 'sign': tf.sign}
HEAD_NAMES = ('decoder', 'reward', 'discount')


class WorldModel(keras.layers.Layer):
  """Encoder + RSSM + heads with DreamerV2's loss and one optimizer.

  Args:
    obs_space: {key: gymnasium.spaces.Box} of a step dict; the input keys (not
      action, reward, discount, is_*, log_*) are encoded and decoded.
    act_space: the action space (Discrete or Box).
    encoder: `encoders` factory, called as `encoder()`.
    dynamics: `dynamics` factory, called as `dynamics()`.
    decoder: `heads` factory, called as `decoder(shapes)` with {key: shape}.
    reward_head: `heads` factory, called as `reward_head(())`.
    discount: gamma; the discount target is discount * (1 - is_terminal) (pipelines
      bind the macro DISCOUNT, which the actor-critic shares).
    discount_head: `heads` factory, called as `discount_head((), dist='binary')`: the
      discount is a Bernoulli (soft targets discount * (1 - is_terminal)), whatever
      the factory's own default distribution. None: no discount head (only with
      pred_discount False).
    pred_discount: whether to learn the discount head (False on DMC).
    terminal_weight: how much a terminal step's term of the discount loss counts
      against a non-terminal one's. 1 (the reference): every step alike. A number
      w > 0: each terminal step counts w times. 'balanced': w = non-terminal /
      terminal steps of each batch, so both classes weigh the same; for tasks whose
      terminations are rare and decided by a threshold the latent state blurs
      (CartPole's |x| > 2.4), which a per-step likelihood learns to predict as
      almost never happening (docs/diagnostics.md, term_prob_end).
    grad_heads: heads whose gradients reach the encoder and RSSM; the others are
      trained on stop_gradient(feat).
    loss_scales: {loss name: scale}, names 'kl', 'reward', 'discount' and the decoded
      keys ('image', ...); missing names scale by 1.
    kl_balance: weight of KL(sg(post) || prior) (the rest trains the posterior).
    kl_free: free nats per side of the balanced KL.
    kl_forward: use KL(prior || post) instead of KL(post || prior).
    kl_free_avg: apply free nats to the batch mean (True) or per step.
    clip_rewards: 'tanh', 'identity' or 'sign', applied to training rewards.
    model_lr, model_eps, model_clip, model_wd: the model's Adam (see optim.Optimizer).
  """

  def __init__(
      self, obs_space, act_space, encoder, dynamics, decoder, reward_head, discount,
      discount_head=None, pred_discount=True, terminal_weight=1.0,
      grad_heads=('decoder', 'reward', 'discount'), loss_scales=None,
      kl_balance=0.8, kl_free=0.0, kl_forward=False, kl_free_avg=True,
      clip_rewards='tanh', model_lr=1e-4, model_eps=1e-5,
      model_clip=100.0, model_wd=1e-6):
    super().__init__(name='world_model')
    args = validate.Arguments(self)
    self.obs_space = obs_space
    self.act_space = act_space
    self.shapes = {k: tuple(obs_space[k].shape) for k in input_keys(obs_space)}
    if not self.shapes:
      raise ConfigError(
          f'WorldModel: the observation space has no input keys ({list(obs_space)}).')
    if isinstance(grad_heads, str) or not hasattr(grad_heads, '__iter__'):
      raise ConfigError(
          f"{args.name('grad_heads')} must be a list of head names from "
          f"{', '.join(HEAD_NAMES)}, got {grad_heads!r}.")
    self.grad_heads = tuple(
        args.one_of(name, 'grad_heads', HEAD_NAMES, 'a list of head names') for name in grad_heads)
    if loss_scales is not None and not isinstance(loss_scales, dict):
      raise ConfigError(
          f"{args.name('loss_scales')} must be a dict {{loss name: scale}}, got "
          f'{loss_scales!r}.')
    loss_scales = dict(loss_scales or {})
    known = {'kl', 'reward', 'discount', *self.shapes}
    unknown = sorted(set(loss_scales) - known)
    if unknown:
      raise ConfigError(
          f"{args.name('loss_scales')} has unknown loss name(s) {unknown}; the losses "
          f"are: {', '.join(sorted(known))}.")
    self.loss_scales = {name: args.non_negative(scale, f'loss_scales[{name!r}]')
                        for name, scale in loss_scales.items()}
    self.kl = dict(forward=args.boolean(kl_forward, 'kl_forward'),
                   balance=args.fraction(kl_balance, 'kl_balance'),
                   free=args.non_negative(kl_free, 'kl_free'),
                   free_avg=args.boolean(kl_free_avg, 'kl_free_avg'))
    self.clip_rewards = args.one_of(clip_rewards, 'clip_rewards', REWARD_CLIPS, 'a reward clip')
    self.discount = args.fraction(discount, 'discount')
    self.pred_discount = args.boolean(pred_discount, 'pred_discount')
    if isinstance(terminal_weight, str) and terminal_weight != 'balanced':
      raise ConfigError(f"{args.name('terminal_weight')} must be 'balanced' or a number "
                        f'> 0, got {terminal_weight!r}.')
    self.terminal_weight = terminal_weight if terminal_weight == 'balanced' else (
        args.number(terminal_weight, 'terminal_weight', 0, low_open=True))
    model_lr = args.positive(model_lr, 'model_lr')
    model_eps = args.positive(model_eps, 'model_eps')
    model_clip = args.clip_norm(model_clip, 'model_clip')
    model_wd = args.weight_decay(model_wd, 'model_wd')

    self.encoder = encoders_lib.registry.build(encoder, 'WorldModel.encoder')
    self.dynamics = dynamics_lib.registry.build(dynamics, 'WorldModel.dynamics')
    build_head = heads_lib.registry.build
    heads = {
        'decoder': build_head(decoder, 'WorldModel.decoder', self.shapes),
        'reward': build_head(reward_head, 'WorldModel.reward_head', ())}
    if self.pred_discount:
      # dist is passed to any factory, so a pipeline's bound default cannot replace it.
      heads['discount'] = build_head(
          discount_head, 'WorldModel.discount_head', (), dist='binary')
    self.heads = heads
    # An encoder with a build() of its own (DreamerEncoder picks its keys there) is
    # built for these observations now, not at the first update: keys it cannot encode
    # are refused before the run spends anything. [B, T] lead every shape.
    if type(self.encoder).build is not keras.layers.Layer.build:
      self.encoder.build(
          {key: (None, None, *space.shape) for key, space in obs_space.items()})
    self.optimizer = Optimizer('model', model_lr, model_eps, model_clip, model_wd)
    self._created = False  # Whether create_variables ran the parts once.

  def state(self):
    """The named variables a checkpoint holds (runner/checkpoint.py)."""
    return {'encoder': self.encoder, 'dynamics': self.dynamics,
            'heads': dict(self.heads), 'optimizer': self.optimizer}

  def preprocess(self, batch):
    """Raw batch -> model data: uint8 images to float32 [-0.5, 0.5], clipped reward,
    'discount' = discount * (1 - is_terminal). `log_*` keys pass unchanged."""
    data = {}
    for key, value in batch.items():
      value = tf.convert_to_tensor(value)
      if key.startswith('log_'):
        pass
      elif value.dtype == tf.uint8:
        value = tf.cast(value, tf.float32) / 255.0 - 0.5
      elif value.dtype.is_integer or value.dtype.is_floating:
        value = tf.cast(value, tf.float32)
      data[key] = value
    if 'reward' in data:
      data['reward'] = REWARD_CLIPS[self.clip_rewards](data['reward'])
    if 'is_terminal' in data:
      data['discount'] = self.discount * (1.0 - tf.cast(data['is_terminal'], tf.float32))
    return data

  def modules(self):
    """The parts the world-model optimizer trains."""
    return [self.encoder, self.dynamics, *self.heads.values()]

  def create_variables(self, optimizer=True):
    """Creates the variables of every part (and of the optimizer) now, if missing.

    A `tf.function` whose first call creates variables traces twice (its first trace
    may create them, the graph it keeps must not), and Keras creates a layer's
    variables at its first call. Callers of a traced `train` (Agent, `train` itself)
    call this first, so that the traced function creates nothing and traces once. It
    runs `compute_loss` eagerly on one step of zeros [1, 1]: the eager random ops it
    runs draw from the eager seed stream, not from the graph-level seeds of the
    traced functions, so the numbers of the traced update do not change
    (tests/test_numerics.py). Nothing is assigned.
    """
    if self.optimizer.optimizer is None and not self._created:  # Else trained already.
      batch = {}
      for key, space in self.obs_space.items():
        dtype = bool if key.startswith('is_') else space.dtype
        batch[key] = tf.zeros((1, 1, *space.shape), dtype)
      batch['action'] = tf.zeros((1, 1, action_size(self.act_space)), tf.float32)
      # The step's flags and reward, also when the observation space leaves them out.
      for key in ('is_first', 'is_last', 'is_terminal'):
        batch.setdefault(key, tf.zeros((1, 1), bool))
      batch.setdefault('reward', tf.zeros((1, 1), tf.float32))
      self.compute_loss(self.preprocess(batch))
      self._created = True
    if optimizer:
      self.optimizer.build(self.modules())

  def train(self, batch, state=None):
    """One optimizer step on a raw batch {key: [B, T, ...]}.

    Returns (state, outputs, metrics): the last posterior {key: [B, ...]}, the
    outputs of `compute_loss`, and float32 scalar metrics.
    """
    if tf.executing_eagerly() and not tf.config.functions_run_eagerly():
      self.create_variables()  # One trace of _train (see create_variables).
    return self._train(batch, state)

  # The code has no tensor-dependent Python control flow, so autograph is off: it
  # only slows tracing down.
  @tf.function(autograph=False)
  def _train(self, batch, state):
    data = self.preprocess(batch)
    with tf.GradientTape() as tape:
      loss, state, outputs, metrics = self.compute_loss(data, state)
    metrics.update(self.optimizer(tape, loss, self.modules()))
    return state, outputs, metrics

  def compute_loss(self, data, state=None):
    """The world-model loss on preprocessed `data` {key: [B, T, ...]}.

    Returns (loss, last_state, outputs, metrics): outputs {'embed': [B, T, E],
    'feat': [B, T, F], 'post', 'prior': [B, T, ...] dicts, 'likes': {name: [B, T]},
    'kl': [B, T]}; metrics '<name>_loss' per loss term, 'model_kl', 'prior_ent',
    'post_ent'.
    """
    embed = self.encoder(data)
    post, prior = self.dynamics.observe(
        embed, data['action'], data['is_first'], state)
    kl_loss, kl_value = self.dynamics.kl_loss(post, prior, **self.kl)
    losses = {'kl': kl_loss}
    feat = self.dynamics.get_feat(post)
    likes = {}
    for name, head in self.heads.items():
      inputs = feat if name in self.grad_heads else tf.stop_gradient(feat)
      out = head(inputs)
      dists = out if isinstance(out, dict) else {name: out}
      for key, dist in dists.items():
        like = tf.cast(dist.log_prob(data[key]), tf.float32)
        likes[key] = like
        if key == 'discount' and self.terminal_weight != 1.0:
          weights = terminal_weights(data['is_terminal'], self.terminal_weight)
          losses[key] = -tf.reduce_mean(weights * like)
        else:
          losses[key] = -tf.reduce_mean(like)
    loss = tf.add_n([
        self.loss_scales.get(name, 1.0) * value for name, value in losses.items()])
    outputs = dict(
        embed=embed, feat=feat, post=post, prior=prior, likes=likes, kl=kl_value)
    metrics = {f'{name}_loss': value for name, value in losses.items()}
    metrics['model_kl'] = tf.reduce_mean(kl_value)
    metrics['prior_ent'] = tf.reduce_mean(self.dynamics.get_dist(prior).entropy())
    metrics['post_ent'] = tf.reduce_mean(self.dynamics.get_dist(post).entropy())
    if 'is_terminal' in data:  # The share of replayed steps that end an episode.
      metrics['batch_terminal'] = tf.reduce_mean(tf.cast(data['is_terminal'], tf.float32))
    last_state = {k: v[:, -1] for k, v in post.items()}
    return loss, last_state, outputs, metrics

  def video_pred(self, batch, key='image', observed=5, rows=6):
    """Open-loop video of a raw batch: [B', T, 3H, W, C] float32 in [0, 1].

    The first `observed` frames are reconstructions from the posterior, the rest
    are predicted from the prior under the batch's actions. Truth, model and
    error ((model - truth + 1) / 2) are stacked along the height; B' = min(B, rows).
    """
    if key not in getattr(self.heads['decoder'], 'image_keys', [key]):
      raise ConfigError(
          f"WorldModel.video_pred: '{key}' is not an image key the decoder predicts.")
    return self._video_pred(batch, key, observed, rows)

  @tf.function(autograph=False)
  def _video_pred(self, batch, key, observed, rows):
    data = self.preprocess({k: v[:rows] for k, v in batch.items()})
    decoder = self.heads['decoder']
    truth = data[key] + 0.5
    length = data[key].shape[1]
    observed = min(observed, length)
    embed = self.encoder(data)
    states, _ = self.dynamics.observe(
        embed[:, :observed], data['action'][:, :observed],
        data['is_first'][:, :observed])
    model = decoder(self.dynamics.get_feat(states))[key].mode() + 0.5
    if observed < length:
      start = {k: v[:, -1] for k, v in states.items()}
      prior = self.dynamics.imagine(data['action'][:, observed:], start)
      openl = decoder(self.dynamics.get_feat(prior))[key].mode() + 0.5
      model = tf.concat([model, openl], 1)
    model = tf.clip_by_value(tf.cast(model, tf.float32), 0.0, 1.0)
    error = (model - truth + 1) / 2
    return tf.concat([truth, model, error], 2)


def terminal_weights(is_terminal, weight):
  """Per-step weights of the discount loss: `weight` at terminal steps, 1 elsewhere.

  `weight` 'balanced': the batch's non-terminal / terminal step count (1 when the
  batch has no terminal step), so the two classes weigh the same in total.
  """
  terminal = tf.cast(is_terminal, tf.float32)
  if weight == 'balanced':
    ends = tf.reduce_sum(terminal)
    others = tf.cast(tf.size(terminal), tf.float32) - ends
    weight = tf.where(ends > 0, others / tf.maximum(ends, 1.0), 1.0)
  return 1.0 + (weight - 1.0) * terminal


gin.register(WorldModel, module='dreamkit')
